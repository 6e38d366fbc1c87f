package processor

import (
	"encoding/binary"
	"math"
)

func putU32(b []byte, i, v int) { binary.BigEndian.PutUint32(b[4*i:], uint32(v)) }

func checkAddFlags(flags byte) error {
	switch {
	case flags&^(ZAddNX|ZAddXX|ZAddGT|ZAddLT) != 0:
		return badArgs("unknown zset add flags 0x%02x", flags)
	case flags&ZAddNX != 0 && flags&(ZAddXX|ZAddGT|ZAddLT) != 0:
		return badArgs("zset add: NX cannot go with XX, GT or LT")
	case flags&ZAddGT != 0 && flags&ZAddLT != 0:
		return badArgs("zset add: GT and LT together")
	}
	return nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
