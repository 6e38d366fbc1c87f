package client

import (
	"fmt"
	"strings"
	"time"

	"github.com/pipecache/pipecache/task"
)

// How a Client tells its callers that the server is gone, rather than leave them waiting for
// their contexts to end:
//
//   - A server that stopped on a host that says so (an ICMP port unreachable, read by the
//     transport from its socket's error queue) ends the session at once; the redial loop's
//     first attempt is refused a few milliseconds later, and every call waiting for a session,
//     and every call made after, fails with ErrUnavailable saying so (sessionFor). The loop
//     goes on trying in the background, with back-off; a call that finds its last failure
//     older than freshFailure asks for an attempt at once and answers with its outcome, so a
//     server that came back is used at once.
//   - A server that went silent (no ICMP: the host is gone, or the network cut) leaves calls
//     unanswered: a call that has heard nothing at all from the server since it was sent, not
//     even an acknowledgment, fails with ErrUnavailable after WithUnreachableAfter (1 s); the
//     session stays until the heartbeat declares it dead (watchTick).

// freshFailure is how long a failed attempt to reconnect answers the calls that come after it
// without another attempt: a busy application does not make the client hammer a dead address.
const freshFailure = 250 * time.Millisecond

// reconnectState is what the callers know of the redial loop. Guarded by Client.mu.
type reconnectState struct {
	err   error         // why the last attempt failed; nil while connected and after a loss until an attempt fails
	at    time.Time     // when that attempt ended
	tried chan struct{} // closed when the next attempt ends, connected or not (then replaced)
}

// attemptEnded publishes the outcome of one attempt to open a session (connectOnce).
func (c *Client) attemptEnded(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err == nil:
		c.rc.err = nil
	case err != ErrClosed:
		c.rc.err, c.rc.at = err, time.Now()
	}
	close(c.rc.tried)
	c.rc.tried = make(chan struct{})
}

// kickRedial asks the redial loop to try now rather than after its back-off. It never blocks.
func (c *Client) kickRedial() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// reconnectError is a call's error while the client cannot reconnect: ErrUnavailable, not sent
// (so a Cluster may try another node), with why the last attempt failed.
type reconnectError struct {
	addr  string
	cause error
}

func (e *reconnectError) Error() string {
	cause := strings.TrimPrefix(e.cause.Error(), ErrUnavailable.Error()+": ")
	return fmt.Sprintf("%v to %s: %s (retrying in the background)", errNotSent, e.addr, cause)
}

func (e *reconnectError) Unwrap() error { return errNotSent }

// watched reports whether a call of op fails when the server is silent for WithUnreachableAfter:
// every caller's request; not the session's own (a hello has its own attempts, a heartbeat and
// a goodbye their own deadlines).
func watched(op task.Op) bool {
	return op != task.OpHello && op != task.OpHeartbeat && op != task.OpGoodbye
}

// watch arms the watch of unanswered calls, unless it is armed or off. Caller holds c.mu.
func (c *Client) watch() {
	d := c.opts.unreachableAfter
	if d <= 0 || c.watching || c.closed {
		return
	}
	c.watching = true
	if c.watchT == nil {
		c.watchT = time.AfterFunc(d/4, c.watchTick)
		return
	}
	c.watchT.Reset(d / 4)
}

// watchTick fails every watched call that has heard nothing from its server, not a datagram,
// for WithUnreachableAfter since it was sent; a call whose server has spoken since is alive
// (slow, perhaps) and left alone. It checks four times per period while such calls wait, and
// not at all otherwise.
func (c *Client) watchTick() {
	d := c.opts.unreachableAfter
	now := time.Now().UnixNano()
	var dead []*call
	c.mu.Lock()
	waiting := false
	for id, cl := range c.pending {
		if !cl.watched || cl.sess.link.heardSince(cl.sentAt) {
			continue
		}
		if now-cl.sentAt < int64(d) {
			waiting = true
			continue
		}
		delete(c.pending, id)
		dead = append(dead, cl)
	}
	c.watching = waiting && !c.closed
	if c.watching {
		c.watchT.Reset(d / 4)
	}
	c.mu.Unlock()
	for _, cl := range dead {
		cl.unreachable = true
		close(cl.reply)
	}
}

// stopWatch stops the watch (Close).
func (c *Client) stopWatch() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.watchT != nil {
		c.watchT.Stop()
	}
	c.watching = false
}
