// Package admin is rempart's phishing-proof operator identity: admins log in
// to the ops listener with WebAuthn (FIDO2 security keys or passkeys) and
// nothing else — there is no admin password. The first admin enrols with a
// one-time token that `rempart serve` prints while no admin exists (and
// `rempart admin enrol-token` re-issues); a login leaves a short-lived signed
// session cookie, and RequireAdmin guards the ops API with it.
//
// Automation (the drill, scripts) may instead present the machine token kept
// in the data directory (mode 0600) as a bearer token. It is deliberately not
// an admin login: it cannot enrol admins or mint enrolment tokens.
package admin
