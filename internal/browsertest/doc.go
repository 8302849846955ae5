// Package browsertest drives a headless Chromium over the DevTools protocol
// (with chromedp) for tests of the pages customers and operators meet: the
// login, the waiting room, the status page. A test gets a browser with New,
// a tab with Tab, and keeps screenshots as artefacts with Shot.
//
// Tests skip with one line when no Chromium is installed, so `go test ./...`
// passes on a laptop without one; CI installs it (`.ci/run`) and runs them.
package browsertest
