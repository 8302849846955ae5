// Package pow is rempart's proof-of-work: the wire format of a challenge and
// its solution, the solver a client runs and the work check a server runs.
// It imports only the standard library so the public client/ SDK (which cannot
// import internal/) can copy it; the server signs and binds challenges
// elsewhere (internal/scrub), this package only moves and checks the bytes.
//
// # Wire format (version 1)
//
// A challenge is one ASCII token of six fields separated by ".":
//
//	1.<bits>.<expires>.<nonce>.<binding>.<mac>
//
// The fields are:
//   - 1: the format version.
//   - bits: the difficulty, decimal 1..32 without leading zeros.
//   - expires: Unix time in seconds, decimal, after which the server refuses
//     solutions to the challenge.
//   - nonce: 16 random bytes, base64url without padding (22 characters).
//   - binding: the client address prefix the challenge was issued to, as
//     base64url without padding of one byte of prefix length followed by the
//     4 (IPv4) or 16 (IPv6) bytes of the masked prefix address.
//   - mac: the server's HMAC-SHA-256 over everything before ".<mac>",
//     base64url without padding (43 characters). Clients never check it.
//
// The server sends the challenge in the Rempart-Challenge response header (and
// in the "challenge" member of a problem+json body, with "difficulty").
//
// A solution is the challenge, a ".", and a counter in decimal (no sign, no
// leading zeros):
//
//	<challenge>.<counter>
//
// It is valid when SHA-256 over the bytes of the whole solution string has at
// least <bits> leading zero bits (most significant bit of the first byte
// first). A client solves by trying counter = 0, 1, 2, ... and sends the first
// valid solution back in the Rempart-Solution request header (browsers: the
// rempart_solution cookie). The expected work is 2^bits hashes; 20 bits is
// about a million SHA-256 computations, a fraction of a second on a phone.
//
// Solving in another language takes about twenty lines: split the challenge on
// "." and read field 2 as bits, then loop over counter computing
// sha256(challenge + "." + counter) until the first bits bits are zero.
package pow
