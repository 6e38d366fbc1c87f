package client

import "errors"

// FailResubscribes makes the next n re-subscribes after a new session fail (tests only).
func FailResubscribes(c *Client, n int) { c.failResubscribes.Store(int32(n)) }

// ForceNewSession drops c's session and its resume token, so that it redials into a new session
// that has none of its subscriptions (as after a session expired on the server).
func ForceNewSession(c *Client) {
	c.resume.Store(nil)
	if s := c.current(); s != nil {
		c.sessionFailed(s, errors.New("test: session forced away"))
	}
}
