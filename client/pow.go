package client

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"strconv"
	"strings"
)

// Headers of rempart's proof-of-work exchange (the wire format is documented
// with the server, in internal/scrub/pow).
const (
	headerChallenge = "Rempart-Challenge"
	headerSolution  = "Rempart-Solution"
	headerClearance = "Rempart-Clearance"
)

// errChallenge means a challenge token could not be solved as sent.
var errChallenge = errors.New("unusable proof-of-work challenge")

// maxChallengeLen bounds the challenge a client accepts; a solution adds a
// dot and at most 20 digits and must stay within the server's 256 bytes.
const maxChallengeLen = 256 - 21

// solve finds the first counter that gives SHA-256(challenge "." counter)
// at least bits leading zero bits, where bits is the challenge's second
// dot-separated field, and returns the solution token challenge.counter.
// It refuses a challenge harder than maxBits and stops when ctx ends.
func solve(ctx context.Context, challenge string, maxBits int) (string, error) {
	fields := strings.SplitN(challenge, ".", 3)
	if len(fields) != 3 || fields[0] != "1" || len(challenge) > maxChallengeLen {
		return "", errChallenge
	}
	bits, err := strconv.Atoi(fields[1])
	if err != nil || bits < 1 || bits > 32 || strconv.Itoa(bits) != fields[1] {
		return "", errChallenge
	}
	if bits > maxBits {
		return "", errors.New("proof-of-work challenge of " + fields[1] + " bits is over the client's limit")
	}
	msg := append(make([]byte, 0, len(challenge)+21), challenge...)
	msg = append(msg, '.')
	n := len(msg)
	for counter := uint64(0); ; counter++ {
		// Checking ctx costs more than a hash: look every 16384 tries.
		if counter%16384 == 0 {
			if err := ctx.Err(); err != nil {
				return "", err
			}
		}
		msg = strconv.AppendUint(msg[:n], counter, 10)
		sum := sha256.Sum256(msg)
		if binary.BigEndian.Uint32(sum[:4])>>(32-bits) == 0 {
			return string(msg), nil
		}
	}
}
