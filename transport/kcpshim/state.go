package kcpshim

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
	sndQueue, sndBuf, rcvQueue, rcvBuf, acklist, output                   reflect.StructField
	err                                                                   error
}

var layout = lookup()

// Layout returns why Save and Reuse cannot be used with this kcp-go (nil if they can).
func Layout() error { return layout.err }

func lookup() (o offsets) {
	t := reflect.TypeFor[kcp.KCP]()
	field := func(name string, kind reflect.Kind) reflect.StructField {
		f, ok := t.FieldByName(name)
		if o.err == nil && (!ok || f.Type.Kind() != kind) {
			o.err = fmt.Errorf("kcpshim: kcp.KCP has no %s of kind %v (kcp-go changed): idle compaction off", name, kind)
		}
		return f
	}
	o.conv = field("conv", reflect.Uint32).Offset
	o.sndUna = field("snd_una", reflect.Uint32).Offset
	o.sndNxt = field("snd_nxt", reflect.Uint32).Offset
	o.rcvNxt = field("rcv_nxt", reflect.Uint32).Offset
	o.rmtWnd = field("rmt_wnd", reflect.Uint32).Offset
	o.rto = field("rx_rto", reflect.Uint32).Offset
	o.srtt = field("rx_srtt", reflect.Int32).Offset
	o.rttvar = field("rx_rttvar", reflect.Int32).Offset
	o.state = field("state", reflect.Uint32).Offset
	o.probe = field("probe", reflect.Uint32).Offset
	o.sndQueue = field("snd_queue", reflect.Pointer)
	o.sndBuf = field("snd_buf", reflect.Pointer)
	o.rcvQueue = field("rcv_queue", reflect.Pointer)
	o.rcvBuf = field("rcv_buf", reflect.Pointer)
	o.acklist = field("acklist", reflect.Slice)
	o.output = field("output", reflect.Func)
	for _, f := range []reflect.StructField{o.sndQueue, o.sndBuf, o.rcvQueue, o.rcvBuf} {
		if m, ok := f.Type.MethodByName("Len"); o.err == nil && (!ok || m.Type.NumOut() != 1 || m.Type.Out(0).Kind() != reflect.Int) {
			o.err = fmt.Errorf("kcpshim: kcp.KCP.%s has no Len() int (kcp-go changed): idle compaction off", f.Name)
		}
	}
	if o.err == nil && o.output.Type.NumIn() != 2 {
		o.err = fmt.Errorf("kcpshim: kcp.KCP.output is %v (kcp-go changed): idle compaction off", o.output.Type)
	}
	return o
}

func u32(k *kcp.KCP, off uintptr) *uint32 { return (*uint32)(unsafe.Add(unsafe.Pointer(k), off)) }
func i32(k *kcp.KCP, off uintptr) *int32  { return (*int32)(unsafe.Add(unsafe.Pointer(k), off)) }

func queueLen(k *kcp.KCP, f reflect.StructField) int {
	q := reflect.NewAt(f.Type, unsafe.Add(unsafe.Pointer(k), f.Offset)).Elem()
	if q.IsNil() {
		return 0
	}
	return int(q.MethodByName("Len").Call(nil)[0].Int())
}

// Save returns k's state if k is idle: nothing queued, in flight, waiting to be read or
// reordered, or to be acknowledged. Only then can k be given to another conversation.
func Save(k *kcp.KCP) (State, bool) {
	o := &layout
	if o.err != nil || *u32(k, o.sndUna) != *u32(k, o.sndNxt) || *u32(k, o.state) != 0 {
		return State{}, false
	}
	for _, f := range []reflect.StructField{o.sndQueue, o.sndBuf, o.rcvQueue, o.rcvBuf} {
		if queueLen(k, f) != 0 {
			return State{}, false
		}
	}
	if reflect.NewAt(o.acklist.Type, unsafe.Add(unsafe.Pointer(k), o.acklist.Offset)).Elem().Len() != 0 {
		return State{}, false
	}
	return State{SndNxt: *u32(k, o.sndNxt), RcvNxt: *u32(k, o.rcvNxt), RmtWnd: *u32(k, o.rmtWnd),
		RTO: *u32(k, o.rto), SRTT: *i32(k, o.srtt), RTTVar: *i32(k, o.rttvar)}, true
}

// Restore puts s into k, a fresh KCP (NewKCP and configured) or an idle one that Save accepted,
// for the conversation conv that outputs through output. Configuration (MTU, windows, no-delay)
// is k's as it was.
func Restore(k *kcp.KCP, conv uint32, output func(buf []byte, size int), s State) {
	o := &layout
	*u32(k, o.conv) = conv
	reflect.NewAt(o.output.Type, unsafe.Add(unsafe.Pointer(k), o.output.Offset)).Elem().
		Set(reflect.ValueOf(output).Convert(o.output.Type))
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
