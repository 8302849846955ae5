//go:build !linux

package drill

import "syscall"

func bindNoPort(network, address string, c syscall.RawConn) error { return nil }
