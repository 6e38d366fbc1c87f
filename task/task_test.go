package task

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestPutZeroesButKeepsSmallBuffers(t *testing.T) {
	tk := Get()
	tk.Op, tk.ReqID, tk.Session, tk.Code = OpSet, 7, 9, CodeBusy
	tk.Key = append(tk.Key, "k"...)
	tk.Value = append(tk.Value, "v"...)
	tk.Err = errors.New("x")
	tk.Enter[StageCachePrc] = 5
	key := tk.Key
	Put(tk)
	assert.Equal(t, OpNone, tk.Op)
	assert.Zero(t, tk.ReqID)
	assert.Nil(t, tk.Err)
	assert.Zero(t, tk.Enter)
	assert.Empty(t, tk.Key)
	assert.Equal(t, cap(key), cap(tk.Key), "small buffers are kept for reuse")
}

func TestPutDropsLargeBuffers(t *testing.T) {
	tk := Get()
	tk.Value = make([]byte, keepBuffer+1)
	Put(tk)
	assert.Nil(t, tk.Value, "a large value buffer must not be pinned by the pool")
}

func TestNames(t *testing.T) {
	assert.Equal(t, "get", OpGet.String())
	assert.Equal(t, "op(200)", Op(200).String())
	assert.True(t, OpStop.IsControl())
	assert.False(t, OpGet.IsControl())
	assert.Equal(t, "cacheprc", StageCachePrc.String())
	assert.Equal(t, "version_mismatch", CodeVersionMismatch.String())
	assert.Equal(t, "code(999)", Code(999).String())
	for o := OpNone; o < numOps; o++ {
		assert.NotEmpty(t, opNames[o], "op %d has no name", o)
	}
}

func TestBarrierCallback(t *testing.T) {
	n := 0
	b := NewBarrier(func() { n++ })
	assert.Equal(t, OpBarrier, b.Op)
	b.BarrierFunc()()
	assert.Equal(t, 1, n)
	assert.Nil(t, Get().BarrierFunc())
}
