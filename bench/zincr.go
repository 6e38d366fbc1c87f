package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/pipecache/pipecache/client"
	"github.com/pipecache/pipecache/processor"
)

// The zincr workload: a leaderboard update, a member's score incremented on a board (a sorted
// set). On pipecache it is one exec of the built-in zset processor (zset incr), or with
// Config.ZIncrCAS the same update done the way a client does it without processors: get the
// board, decode it, change the score, encode it, and write it back with a CAS (an add for a
// new board), again from the get whenever another caller won the race. On Redis it is ZINCRBY.

// boardKey and memberName name board i and member j.
func boardKey(prefix string, i int) string { return prefix + "board:" + strconv.Itoa(i) }
func memberName(j int) string              { return "player:" + strconv.Itoa(j) }

// errNoZIncr: the server has no sorted sets (memcached), or no CAS variant of them.
var errNoZIncr = errors.New("bench: this server has no zincr")

func (p pipecacheConn) ZIncr(ctx context.Context, key, member string, delta float64, cas bool) (int64, error) {
	if cas {
		return p.zincrCAS(ctx, key, member, delta)
	}
	_, _, err := p.c.Exec(ctx, key, "zset", processor.ZIncrArgs(member, delta))
	return 0, err
}

// zincrCAS is the update by get, decode, change, encode and CAS, retried until it wins or ctx
// ends; it returns how many times it lost.
func (p pipecacheConn) zincrCAS(ctx context.Context, key, member string, delta float64) (int64, error) {
	var conflicts int64
	for ctx.Err() == nil {
		members, version, err := p.readBoard(ctx, key)
		if err != nil {
			return conflicts, err
		}
		members = addScore(members, member, delta)
		value, err := processor.EncodeZSet(nil, members)
		if err != nil {
			return conflicts, err
		}
		if version == 0 {
			_, err = p.c.Add(ctx, key, value)
		} else {
			_, err = p.c.CAS(ctx, key, value, version)
		}
		if !errors.Is(err, client.ErrVersionMismatch) && !errors.Is(err, client.ErrExists) {
			return conflicts, err
		}
		conflicts++
	}
	return conflicts, ctx.Err()
}

// readBoard gets and decodes a board; version 0: there is none yet.
func (p pipecacheConn) readBoard(ctx context.Context, key string) ([]processor.Member, uint64, error) {
	it, err := p.c.Get(ctx, key)
	switch {
	case errors.Is(err, client.ErrNotFound):
		return nil, 0, nil
	case err != nil:
		return nil, 0, err
	}
	members, err := processor.DecodeZSet(it.Value)
	if err != nil {
		return nil, 0, fmt.Errorf("board %s: %w", key, err)
	}
	return members, it.Version, nil
}

func addScore(members []processor.Member, name string, delta float64) []processor.Member {
	for i := range members {
		if members[i].Name == name {
			members[i].Score += delta
			return members
		}
	}
	return append(members, processor.Member{Name: name, Score: delta})
}

func (r redisConn) ZIncr(ctx context.Context, key, member string, delta float64, cas bool) (int64, error) {
	if cas {
		return 0, fmt.Errorf("%w: -zincr-cas is pipecache's (Redis has ZINCRBY)", errNoZIncr)
	}
	return 0, r.c.ZIncrBy(ctx, key, delta, member).Err()
}

func (m memcachedConn) ZIncr(context.Context, string, string, float64, bool) (int64, error) {
	return 0, fmt.Errorf("%w: memcached has no sorted sets", errNoZIncr)
}

// checkZIncr refuses a zincr workload a server cannot run, before it starts.
func (c *Config) checkZIncr(mix [numOps]int) error {
	if mix[opZIncr] == mix[opZIncr-1] {
		return nil // no zincr in the mix
	}
	switch {
	case c.Members <= 0:
		return errors.New("members must be positive")
	case c.Server == "memcached":
		return fmt.Errorf("%w: memcached has no sorted sets", errNoZIncr)
	case c.ZIncrCAS && c.Server == "redis":
		return fmt.Errorf("%w: -zincr-cas is pipecache's (Redis has ZINCRBY)", errNoZIncr)
	}
	return nil
}
