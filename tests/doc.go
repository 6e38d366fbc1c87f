// Package tests holds end-to-end tests: they build cmd/pipecached, run it as a separate process
// on loopback, and talk to it through the client SDK, as a user would.
package tests
