package dgram

import (
	"fmt"
	"reflect"
	"unsafe"

	"github.com/xtaci/kcp-go/v5"
)

// State is what an idle conversation keeps of its KCP: the next sequence number to send (every
// one sent is acknowledged), the next expected, the peer's window and the RTT estimate.
type State struct {
	SndNxt, RcvNxt, RmtWnd, RTO uint32
	SRTT, RTTVar                int32
}

type offsets struct {
	conv, sndUna, sndNxt, rcvNxt, rmtWnd, rto, srtt, rttvar, state, probe uintptr
	rcvQueue, ringHead, ringTail, rcvBuf, heapLen, ackLen, output         uintptr
	err                                                                   error
}

var layout = lookup()

// Layout returns why Save and Restore cannot be used with this kcp-go (nil if they can).
func Layout() error { return layout.err }

// lookup finds the fields by name and checks their kinds, once: Save and Restore then read and
// write them at their offsets, with neither reflection nor allocation.
func lookup() (o offsets) {
	t := reflect.TypeFor[kcp.KCP]()
	fail := func(format string, args ...any) {
		if o.err == nil {
			o.err = fmt.Errorf("dgram: "+format+" (kcp-go changed): idle compaction off", args...)
		}
	}
	field := func(t reflect.Type, name string, kind reflect.Kind) reflect.StructField {
		f, ok := t.FieldByName(name)
		if !ok || f.Type.Kind() != kind {
			fail("%v has no %s of kind %v", t, name, kind)
		}
		return f
	}
	o.conv = field(t, "conv", reflect.Uint32).Offset
	o.sndUna = field(t, "snd_una", reflect.Uint32).Offset
	o.sndNxt = field(t, "snd_nxt", reflect.Uint32).Offset
	o.rcvNxt = field(t, "rcv_nxt", reflect.Uint32).Offset
	o.rmtWnd = field(t, "rmt_wnd", reflect.Uint32).Offset
	o.rto = field(t, "rx_rto", reflect.Uint32).Offset
	o.srtt = field(t, "rx_srtt", reflect.Int32).Offset
	o.rttvar = field(t, "rx_rttvar", reflect.Int32).Offset
	o.state = field(t, "state", reflect.Uint32).Offset
	o.probe = field(t, "probe", reflect.Uint32).Offset
	// The queues: snd_queue and snd_buf are checked through the exported WaitSnd. rcv_queue
	// (segments in order, not read yet) is a pointer to a ring, empty when its head and tail
	// meet: PeekSize would not do, it says -1 while a message's fragments are still arriving.
	// rcv_buf (out-of-order segments) is a pointer to a heap whose segments slice holds them,
	// and acklist a slice.
	rcvQueue := field(t, "rcv_queue", reflect.Pointer)
	o.rcvQueue = rcvQueue.Offset
	if o.err == nil {
		o.ringHead = field(rcvQueue.Type.Elem(), "head", reflect.Int).Offset
		o.ringTail = field(rcvQueue.Type.Elem(), "tail", reflect.Int).Offset
	}
	rcvBuf := field(t, "rcv_buf", reflect.Pointer)
	o.rcvBuf = rcvBuf.Offset
	if o.err == nil {
		o.heapLen = field(rcvBuf.Type.Elem(), "segments", reflect.Slice).Offset + unsafe.Sizeof(uintptr(0))
	}
	o.ackLen = field(t, "acklist", reflect.Slice).Offset + unsafe.Sizeof(uintptr(0))
	out := field(t, "output", reflect.Func)
	o.output = out.Offset
	if o.err == nil && !out.Type.ConvertibleTo(reflect.TypeFor[func([]byte, int)]()) {
		fail("kcp.KCP.output is %v", out.Type)
	}
	return o
}

func u32(k *kcp.KCP, off uintptr) *uint32 { return (*uint32)(unsafe.Add(unsafe.Pointer(k), off)) }
func i32(k *kcp.KCP, off uintptr) *int32  { return (*int32)(unsafe.Add(unsafe.Pointer(k), off)) }

// sliceLen reads the length word of a slice header at p.
func sliceLen(p unsafe.Pointer) int { return *(*int)(p) }

// Idle reports whether k holds nothing State cannot carry: nothing queued, in flight, waiting
// to be read or reordered, or to be acknowledged, and its link not dead (kcp-go marks it so
// when a segment was sent too often: a dead link's state dropped and restored would come back
// alive, or, given to another conversation, make that one dead). Only then can Save take its
// state.
func Idle(k *kcp.KCP) bool {
	o := &layout
	if o.err != nil || *u32(k, o.sndUna) != *u32(k, o.sndNxt) || *u32(k, o.state) != 0 ||
		k.WaitSnd() != 0 || sliceLen(unsafe.Add(unsafe.Pointer(k), o.ackLen)) != 0 {
		return false
	}
	if ring := *(*unsafe.Pointer)(unsafe.Add(unsafe.Pointer(k), o.rcvQueue)); ring != nil &&
		*(*int)(unsafe.Add(ring, o.ringHead)) != *(*int)(unsafe.Add(ring, o.ringTail)) {
		return false
	}
	heap := *(*unsafe.Pointer)(unsafe.Add(unsafe.Pointer(k), o.rcvBuf))
	return heap == nil || sliceLen(unsafe.Add(heap, o.heapLen)) == 0
}

// Save returns k's state if k is Idle. Only then can k be given to another conversation.
func Save(k *kcp.KCP) (State, bool) {
	if !Idle(k) {
		return State{}, false
	}
	o := &layout
	return State{SndNxt: *u32(k, o.sndNxt), RcvNxt: *u32(k, o.rcvNxt), RmtWnd: *u32(k, o.rmtWnd),
		RTO: *u32(k, o.rto), SRTT: *i32(k, o.srtt), RTTVar: *i32(k, o.rttvar)}, true
}

// Restore puts s into k, a fresh KCP (NewKCP and configured) or an idle one that Save accepted,
// for the conversation conv that outputs through output. Configuration (MTU, windows, no-delay)
// is k's as it was. It allocates nothing.
func Restore(k *kcp.KCP, conv uint32, output func(buf []byte, size int), s State) {
	o := &layout
	*u32(k, o.conv) = conv
	// kcp.KCP.output's type is a named func([]byte, int): the same representation.
	*(*func([]byte, int))(unsafe.Add(unsafe.Pointer(k), o.output)) = output
	*u32(k, o.sndUna), *u32(k, o.sndNxt), *u32(k, o.rcvNxt) = s.SndNxt, s.SndNxt, s.RcvNxt
	*u32(k, o.rmtWnd), *u32(k, o.rto) = s.RmtWnd, s.RTO
	*i32(k, o.srtt), *i32(k, o.rttvar) = s.SRTT, s.RTTVar
	*u32(k, o.probe) = 0
}

// RTO returns k's current retransmission timeout, in milliseconds (0 if the layout is unknown).
func RTO(k *kcp.KCP) uint32 {
	if layout.err != nil {
		return 0
	}
	return *u32(k, layout.rto)
}
