package main

import (
	"errors"
	"fmt"
	"strings"
)

// errUnbalanced: a line's quotes do not close, or a closing quote is not followed by a space.
var errUnbalanced = errors.New("unbalanced quotes")

// splitLine cuts a command line into arguments as redis-cli does. Arguments are separated by
// spaces or tabs. "double quotes" allow spaces and the escapes \" \\ \n \r \t \b \a and \xHH
// (any other backslash keeps the character after it); 'single quotes' allow spaces, and \' is
// the only escape. A closing quote must end the argument. Outside quotes every character,
// backslashes included, is itself.
func splitLine(line string) ([]string, error) {
	var args []string
	for i := 0; ; {
		for i < len(line) && isSpace(line[i]) {
			i++
		}
		if i == len(line) {
			return args, nil
		}
		arg, next, err := splitArg(line, i)
		if err != nil {
			return nil, fmt.Errorf("%w at column %d", err, i+1)
		}
		args = append(args, arg)
		i = next
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// splitArg reads the argument that starts at line[i] and returns it and the index after it.
func splitArg(line string, i int) (string, int, error) {
	var b strings.Builder
	for i < len(line) && !isSpace(line[i]) {
		switch line[i] {
		case '"':
			n, err := doubleQuoted(&b, line, i+1)
			if err != nil {
				return "", 0, err
			}
			i = n
		case '\'':
			n, err := singleQuoted(&b, line, i+1)
			if err != nil {
				return "", 0, err
			}
			i = n
		default:
			b.WriteByte(line[i])
			i++
			continue
		}
		if i < len(line) && !isSpace(line[i]) {
			return "", 0, errUnbalanced // "ab"c: a closing quote must end the argument
		}
	}
	return b.String(), i, nil
}

// doubleQuoted copies the text after an opening " up to the closing one into b, resolving
// escapes, and returns the index after the closing quote.
func doubleQuoted(b *strings.Builder, line string, i int) (int, error) {
	for ; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '"':
			return i + 1, nil
		case c != '\\' || i+1 == len(line):
			b.WriteByte(c)
		case line[i+1] == 'x' && i+3 < len(line) && isHex(line[i+2]) && isHex(line[i+3]):
			b.WriteByte(unhex(line[i+2])<<4 | unhex(line[i+3]))
			i += 3
		default:
			i++
			b.WriteByte(unescape(line[i]))
		}
	}
	return 0, errUnbalanced
}

// singleQuoted copies the text after an opening ' up to the closing one into b (\' is a quote)
// and returns the index after the closing quote.
func singleQuoted(b *strings.Builder, line string, i int) (int, error) {
	for ; i < len(line); i++ {
		switch {
		case line[i] == '\\' && i+1 < len(line) && line[i+1] == '\'':
			b.WriteByte('\'')
			i++
		case line[i] == '\'':
			return i + 1, nil
		default:
			b.WriteByte(line[i])
		}
	}
	return 0, errUnbalanced
}

func unescape(c byte) byte {
	switch c {
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	case 'b':
		return '\b'
	case 'a':
		return '\a'
	}
	return c
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// quoteArg is the inverse of splitLine for one argument: it returns a as it would be typed.
func quoteArg(a string) string {
	if a != "" && !strings.ContainsAny(a, " \t\r\n\"'\\") && isPrintable(a) {
		return a
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(a); i++ {
		switch c := a[i]; {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func isPrintable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return false
		}
	}
	return true
}
