package config

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// The flag.Value types below back every setting. They exist instead of the
// flag package's own so that the same parser, with the same short error
// messages, serves flags and environment variables, and so that --help shows
// durations as 720h rather than 720h0m0s.

type stringValue string

func (v *stringValue) Set(s string) error { *v = stringValue(s); return nil }
func (v *stringValue) String() string     { return string(*v) }

type intValue int

func (v *intValue) Set(s string) error {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, strconv.IntSize)
	if err != nil {
		return errors.New("want an integer")
	}
	*v = intValue(n)
	return nil
}

func (v *intValue) String() string { return strconv.Itoa(int(*v)) }

type boolValue bool

// IsBoolFlag lets --allow-registration stand without "=true".
func (v *boolValue) IsBoolFlag() bool { return true }

func (v *boolValue) Set(s string) error {
	// YAML 1.1 spellings too, because yaml.v3 accepts them in the file and
	// an operator should not have to remember which source takes which.
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "t", "true", "y", "yes", "on":
		*v = true
	case "0", "f", "false", "n", "no", "off":
		*v = false
	default:
		return errors.New("want true or false")
	}
	return nil
}

func (v *boolValue) String() string { return strconv.FormatBool(bool(*v)) }

type durationValue time.Duration

func (v *durationValue) Set(s string) error {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return errors.New("want a duration such as 30s, 5m or 720h")
	}
	*v = durationValue(d)
	return nil
}

func (v *durationValue) String() string { return formatDuration(time.Duration(*v)) }

// formatDuration drops the zero tail time.Duration.String adds (720h0m0s →
// 720h, 5m0s → 5m); the result still parses with time.ParseDuration.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
