// Package tests holds end-to-end tests: they build cmd/pipecached, run it as a separate process
// on loopback, and talk to it through the client SDK, as a user would.
//
// # Green every time: what a test may assume about time
//
// The suite must pass on a slow machine, with two busy loops holding both cores, as well as on
// an idle one. So a test assumes nothing about how fast a timer, another goroutine, another
// stage loop or a push runs. The rules, which every test package of the module follows:
//
//   - A state that something else changes (a counter, a session count, a cache or near-cache
//     state, a goroutine count, a conversation count) is read only once it is settled:
//     either something orders the read after the change (the reply to a later request on the
//     same stream; a counter the server moves before it replies), or the test waits for the
//     condition it means with pctest.WaitFor (bound: pctest.Timeout, 60 s), never a fixed sleep.
//     Two counters moved one after the other (Expired, then Sessions) are waited for together.
//   - Where the protocol allows several orders (a push and a reply, a push and a get), the
//     test asserts what the protocol or README guarantees (a client reads its own writes), not
//     the one order an idle machine shows.
//   - A timeout, heartbeat, lease or budget a test sets is either what the test is about (then
//     the test waits for it to pass, and what it checks cannot be undone by a slower machine),
//     or generous: a lease of seconds, not 60 ms; no processor time budget (the product's
//     10 ms is wall-clock, and a loaded machine pre-empts a loop thread for longer), and a store
//     timeout of half the test's bound (testdaemon.Start), not the product's 2 s.
//   - A client dials with the test's bound as its dial timeout (dial, dialT), unless the dial
//     timeout is what the test is about: the SDK says hello again on a fresh conversation after
//     a third of it, and a server slower than that leaves the first hello's session behind.
//     Likewise its WithUnreachableAfter is half the test's bound, not the SDK's 1 s of silence:
//     a one-loop daemon under the race detector with both cores busy can be silent that long
//     and be alive (TestEveryMapping's -threads 1 pass failed so).
//   - A count of what the client sent (requests, datagrams) excludes what timers add:
//     heartbeats, KCP retransmissions.
//   - Speed is checked by benchmarks (BENCHMARKS.md), never by a test.
package tests
