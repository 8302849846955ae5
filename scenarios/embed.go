// Package scenarios holds the drill scenarios shipped with rempart, embedded
// so that `rempart drill` runs on a fresh clone with no files at hand.
package scenarios

import "embed"

// FS holds every *.yaml scenario of this folder.
//
//go:embed *.yaml
var FS embed.FS
