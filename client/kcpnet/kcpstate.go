package kcpnet

import (
	"fmt"
	"reflect"
	"unsafe"

	"github.com/xtaci/kcp-go/v5"
)

// Idle compaction (Config.CompactAfter): an idle conversation's kcp.KCP (about 20 KB: three
// rings of 64 segments and a 4 KB flush buffer, whatever the traffic) is dropped, and what a
// new one needs to continue the conversation is kept: the next sequence number to send (all
// sent are acknowledged), the next expected, the peer's window and the RTT estimate. kcp-go has
// no exported way to set them, so this reaches into its unexported fields by name, through
// reflect for the offsets and unsafe for the access, as kcpflush.go reaches its flush. The
// fields are looked up once; if any is missing or has changed type (a kcp-go upgrade),
// compaction is off (kcpLayout.err says why) and TestKCPLayout fails.

// kcpState is what an idle conversation keeps of its KCP.
type kcpState struct {
	sndNxt, rcvNxt, rmtWnd, rto uint32
	srtt, rttvar                int32
}

type kcpOffsets struct {
	sndUna, sndNxt, rcvNxt, rmtWnd, rto, srtt, rttvar uintptr
	sndQueue, sndBuf, rcvQueue, rcvBuf, acklist       reflect.StructField
	err                                               error
}

var kcpLayout = lookupKCPLayout()

func lookupKCPLayout() (o kcpOffsets) {
	t := reflect.TypeFor[kcp.KCP]()
	field := func(name string, kind reflect.Kind) reflect.StructField {
		f, ok := t.FieldByName(name)
		if o.err == nil && (!ok || f.Type.Kind() != kind) {
			o.err = fmt.Errorf("kcpnet: kcp.KCP has no %s of kind %v (kcp-go changed): idle compaction off", name, kind)
		}
		return f
	}
	o.sndUna = field("snd_una", reflect.Uint32).Offset
	o.sndNxt = field("snd_nxt", reflect.Uint32).Offset
	o.rcvNxt = field("rcv_nxt", reflect.Uint32).Offset
	o.rmtWnd = field("rmt_wnd", reflect.Uint32).Offset
	o.rto = field("rx_rto", reflect.Uint32).Offset
	o.srtt = field("rx_srtt", reflect.Int32).Offset
	o.rttvar = field("rx_rttvar", reflect.Int32).Offset
	o.sndQueue = field("snd_queue", reflect.Pointer)
	o.sndBuf = field("snd_buf", reflect.Pointer)
	o.rcvQueue = field("rcv_queue", reflect.Pointer)
	o.rcvBuf = field("rcv_buf", reflect.Pointer)
	o.acklist = field("acklist", reflect.Slice)
	for _, f := range []reflect.StructField{o.sndQueue, o.sndBuf, o.rcvQueue, o.rcvBuf} {
		if m, ok := f.Type.MethodByName("Len"); o.err == nil && (!ok || m.Type.NumOut() != 1 || m.Type.Out(0).Kind() != reflect.Int) {
			o.err = fmt.Errorf("kcpnet: kcp.KCP.%s has no Len() int (kcp-go changed): idle compaction off", f.Name)
		}
	}
	return o
}

func u32(k *kcp.KCP, off uintptr) *uint32 { return (*uint32)(unsafe.Add(unsafe.Pointer(k), off)) }
func i32(k *kcp.KCP, off uintptr) *int32  { return (*int32)(unsafe.Add(unsafe.Pointer(k), off)) }

// queueLen calls Len on one of k's queues.
func queueLen(k *kcp.KCP, f reflect.StructField) int {
	q := reflect.NewAt(f.Type, unsafe.Add(unsafe.Pointer(k), f.Offset)).Elem()
	if q.IsNil() {
		return 0
	}
	return int(q.MethodByName("Len").Call(nil)[0].Int())
}

// saveIdle returns k's state if k is idle: nothing queued, in flight, waiting to be read or
// reordered, or to be acknowledged. Only then can a new KCP take its place.
func saveIdle(k *kcp.KCP) (kcpState, bool) {
	o := &kcpLayout
	if o.err != nil || *u32(k, o.sndUna) != *u32(k, o.sndNxt) {
		return kcpState{}, false
	}
	for _, f := range []reflect.StructField{o.sndQueue, o.sndBuf, o.rcvQueue, o.rcvBuf} {
		if queueLen(k, f) != 0 {
			return kcpState{}, false
		}
	}
	if reflect.NewAt(o.acklist.Type, unsafe.Add(unsafe.Pointer(k), o.acklist.Offset)).Elem().Len() != 0 {
		return kcpState{}, false
	}
	return kcpState{sndNxt: *u32(k, o.sndNxt), rcvNxt: *u32(k, o.rcvNxt), rmtWnd: *u32(k, o.rmtWnd),
		rto: *u32(k, o.rto), srtt: *i32(k, o.srtt), rttvar: *i32(k, o.rttvar)}, true
}

// restore puts a saved state into a fresh KCP (one NewKCP made and configured).
func restore(k *kcp.KCP, s kcpState) {
	o := &kcpLayout
	*u32(k, o.sndUna), *u32(k, o.sndNxt), *u32(k, o.rcvNxt) = s.sndNxt, s.sndNxt, s.rcvNxt
	*u32(k, o.rmtWnd), *u32(k, o.rto) = s.rmtWnd, s.rto
	*i32(k, o.srtt), *i32(k, o.rttvar) = s.srtt, s.rttvar
}
