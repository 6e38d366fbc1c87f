// Package pctest holds what pipecache's tests share (as bbolt's internal/btesting does for
// bbolt's): the one bound on every wait (Timeout), a context that ends with the test (Context),
// a logger into the test's log (Logger), a wait for a condition (WaitFor), and a UDP relay that
// loses, duplicates and reorders datagrams (LossyRelay).
//
// It imports no package of pipecache's, so the tests of every package, internal ones included,
// may import it without an import cycle. Starting a daemon in a test needs package daemon, which
// imports most of the module: that helper is internal/testdaemon, for the tests of packages that
// daemon does not import (and external test packages).
//
// A test waits for the condition it means rather than assuming how fast a timer, a goroutine or
// another loop runs: the rules every test package follows are written in package tests
// (tests/doc.go).
package pctest
