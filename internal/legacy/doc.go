// Package legacy rebuilds the architecture that failed in December 2025, as
// the drill's "2025" arm: the identity provider keeps its sessions in the
// bank's legacy core database, every customer request's token is checked
// against that database, logins meet no admission, waiting room or
// scrubbing, and one fixed time-out covers every route. It uses the same
// identity provider, estate and password costs as rempart, so that what the
// drill compares is the architecture, not the parts.
package legacy
