//go:build !linux

package kcpnet

import (
	"net/netip"
	"time"
)

// Engine is Linux only; elsewhere it cannot be created.
type Engine struct{}

// Conn is Linux only.
type Conn struct{}

// Default returns ErrUnsupported on this platform.
func Default() (*Engine, error) { return nil, ErrUnsupported }

// NewEngine returns ErrUnsupported on this platform.
func NewEngine(Config) (*Engine, error) { return nil, ErrUnsupported }

// Dial returns ErrUnsupported on this platform.
func (e *Engine) Dial(string, DialOptions) (*Conn, error) { return nil, ErrUnsupported }

// DialAddrPort returns ErrUnsupported on this platform.
func (e *Engine) DialAddrPort(netip.AddrPort, DialOptions) (*Conn, error) { return nil, ErrUnsupported }

// Close does nothing on this platform.
func (e *Engine) Close() error { return nil }

// Stats returns nothing on this platform.
func (e *Engine) Stats() Stats { return Stats{} }

// Send returns ErrUnsupported on this platform.
func (c *Conn) Send([]byte) error { return ErrUnsupported }

// Queue returns ErrUnsupported on this platform.
func (c *Conn) Queue([]byte) error { return ErrUnsupported }

// Flush does nothing on this platform.
func (e *Engine) Flush() {}

// Close does nothing on this platform.
func (c *Conn) Close() error { return nil }

// Err returns ErrUnsupported on this platform.
func (c *Conn) Err() error { return ErrUnsupported }

// LastHeard returns the zero time on this platform.
func (c *Conn) LastHeard() time.Time { return time.Time{} }

// LastData returns the zero time on this platform.
func (c *Conn) LastData() time.Time { return time.Time{} }

// Conv returns 0 on this platform.
func (c *Conn) Conv() uint32 { return 0 }

// RemoteAddr returns nothing on this platform.
func (c *Conn) RemoteAddr() netip.AddrPort { return netip.AddrPort{} }

// LocalAddr returns nothing on this platform.
func (c *Conn) LocalAddr() netip.AddrPort { return netip.AddrPort{} }

// Ctx returns nil on this platform.
func (c *Conn) Ctx() any { return nil }

// WaitSnd returns 0 on this platform.
func (c *Conn) WaitSnd() int { return 0 }
