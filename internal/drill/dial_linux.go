package drill

import "syscall"

// ipBindAddressNoPort is IP_BIND_ADDRESS_NO_PORT from linux/in.h (Linux 4.2).
const ipBindAddressNoPort = 24

// bindNoPort lets the kernel pick the source port at connect time, when it
// knows the destination, instead of at bind time. Without it, thousands of
// bound sources churning connections make every bind scan the port range
// under a lock (measured: dispatch lag p99 near 0.5 s at 1,800 req/s).
func bindNoPort(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
	})
	if err != nil {
		return err
	}
	return serr
}
