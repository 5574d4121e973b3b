package binary

// Typed values (docs §5.2). Each parse function accepts exactly the strings
// that its formatter gives back byte for byte, so typing never changes a
// value; everything else is written as a plain string.

// parseUint accepts canonical decimal: digits only, no sign, no leading
// zero (except "0"), below 2^64.
func parseUint(s string) (uint64, bool) {
	if len(s) == 0 || len(s) > 20 || len(s) > 1 && s[0] == '0' {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// decimalLen is len(strconv.FormatUint(v, 10)).
func decimalLen(v uint64) int {
	n := 1
	for v >= 10 {
		v /= 10
		n++
	}
	return n
}

const hexLower, hexUpper = "0123456789abcdef", "0123456789ABCDEF"

// hexCase classifies hex digit c: 0 digit, 1 lowercase letter, 2 uppercase
// letter, -1 not hex.
func hexCase(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return 0
	case c >= 'a' && c <= 'f':
		return 1
	case c >= 'A' && c <= 'F':
		return 2
	}
	return -1
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// hexString reports whether s is a non-empty, even-length hex string in one
// case, and whether that case is upper.
func hexString(s string) (upper, ok bool) {
	if len(s) == 0 || len(s)%2 != 0 {
		return false, false
	}
	seen := 0
	for i := 0; i < len(s); i++ {
		k := hexCase(s[i])
		switch {
		case k < 0:
			return false, false
		case k > 0 && seen == 0:
			seen = k
		case k > 0 && k != seen:
			return false, false
		}
	}
	return seen == 2, true
}

func appendHexBytes(dst []byte, s string) []byte {
	for i := 0; i+1 < len(s); i += 2 {
		dst = append(dst, unhex(s[i])<<4|unhex(s[i+1]))
	}
	return dst
}

func appendHexString(dst, b []byte, upper bool) []byte {
	digits := hexLower
	if upper {
		digits = hexUpper
	}
	for _, c := range b {
		dst = append(dst, digits[c>>4], digits[c&15])
	}
	return dst
}

// uuidString reports whether s is a UUID in the 8-4-4-4-12 form, one case.
func uuidString(s string) (upper, ok bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return false, false
	}
	seen := 0
	for i := 0; i < 36; i++ {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			continue
		}
		k := hexCase(s[i])
		switch {
		case k < 0:
			return false, false
		case k > 0 && seen == 0:
			seen = k
		case k > 0 && k != seen:
			return false, false
		}
	}
	return seen == 2, true
}

func appendUUIDBytes(dst []byte, s string) []byte {
	for i := 0; i < 36; {
		if s[i] == '-' {
			i++
			continue
		}
		dst = append(dst, unhex(s[i])<<4|unhex(s[i+1]))
		i += 2
	}
	return dst
}

func appendUUIDString(dst, b []byte, upper bool) []byte {
	digits := hexLower
	if upper {
		digits = hexUpper
	}
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, digits[c>>4], digits[c&15])
	}
	return dst
}

const b64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

var b64Value = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < 64; i++ {
		t[b64Alphabet[i]] = int8(i)
	}
	return t
}()

// b64Len returns the byte count of canonical padded standard base64 s, or
// -1 if s is not exactly what appendB64 would write for those bytes.
func b64Len(s string) int {
	if len(s) == 0 || len(s)%4 != 0 {
		return -1
	}
	pad := 0
	if s[len(s)-1] == '=' {
		pad++
		if s[len(s)-2] == '=' {
			pad++
		}
	}
	body := len(s) - pad
	for i := 0; i < body; i++ {
		if b64Value[s[i]] < 0 {
			return -1
		}
	}
	// The bits the padding leaves unused must be zero.
	switch last := b64Value[s[body-1]]; pad {
	case 1:
		if last&0x3 != 0 {
			return -1
		}
	case 2:
		if last&0xF != 0 {
			return -1
		}
	}
	return len(s)/4*3 - pad
}

// appendB64Bytes decodes s, which b64Len accepted.
func appendB64Bytes(dst []byte, s string) []byte {
	for i := 0; i < len(s); i += 4 {
		var v uint32
		n := 0
		for j := 0; j < 4; j++ {
			c := s[i+j]
			if c == '=' {
				break
			}
			v |= uint32(b64Value[c]) << (18 - 6*j)
			n++
		}
		dst = append(dst, byte(v>>16))
		if n > 2 {
			dst = append(dst, byte(v>>8))
		}
		if n > 3 {
			dst = append(dst, byte(v))
		}
	}
	return dst
}

// b64StringLen is the length of the base64 form of n bytes.
func b64StringLen(n int) int { return (n + 2) / 3 * 4 }

func appendB64String(dst, b []byte) []byte {
	for len(b) >= 3 {
		v := uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2])
		dst = append(dst, b64Alphabet[v>>18], b64Alphabet[v>>12&63], b64Alphabet[v>>6&63], b64Alphabet[v&63])
		b = b[3:]
	}
	switch len(b) {
	case 1:
		v := uint32(b[0]) << 16
		dst = append(dst, b64Alphabet[v>>18], b64Alphabet[v>>12&63], '=', '=')
	case 2:
		v := uint32(b[0])<<16 | uint32(b[1])<<8
		dst = append(dst, b64Alphabet[v>>18], b64Alphabet[v>>12&63], b64Alphabet[v>>6&63], '=')
	}
	return dst
}

// b32hAlphabet is RFC 4648 §7 base32hex in lower case, the alphabet of
// the server's archive ids (store.NewArchiveID).
const b32hAlphabet = "0123456789abcdefghijklmnopqrstuv"

var b32hValue = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for i := range len(b32hAlphabet) {
		t[b32hAlphabet[i]] = int8(i)
	}
	return t
}()

// b32hLen returns the byte count of s if s is exactly what
// appendB32HString writes for those bytes, else -1. That rules out upper
// case, padding, lengths no byte count gives (8 digits carry 5 bytes, and
// 1–4 bytes take 2, 4, 5 or 7 digits) and non-zero bits in the last digit
// beyond the last byte: without these a decoder could not give s back.
func b32hLen(s string) int {
	if r := len(s) % 8; len(s) == 0 || r == 1 || r == 3 || r == 6 {
		return -1
	}
	for i := 0; i < len(s); i++ {
		if b32hValue[s[i]] < 0 {
			return -1
		}
	}
	n := len(s) * 5 / 8
	if unused := len(s)*5 - n*8; b32hValue[s[len(s)-1]]&(1<<unused-1) != 0 {
		return -1
	}
	return n
}

// appendB32HBytes decodes s, which b32hLen accepted. Whole groups of 8
// digits are 40 bits, 5 bytes, so they need no bit buffer across groups.
func appendB32HBytes(dst []byte, s string) []byte {
	for ; len(s) >= 8; s = s[8:] {
		var v uint64
		for i := range 8 {
			v = v<<5 | uint64(b32hValue[s[i]])
		}
		dst = append(dst, byte(v>>32), byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	if len(s) > 0 {
		var v uint64
		for i := range len(s) {
			v = v<<5 | uint64(b32hValue[s[i]])
		}
		n := len(s) * 5 / 8
		v >>= len(s)*5 - n*8 // the zero bits beyond the last byte
		for i := n - 1; i >= 0; i-- {
			dst = append(dst, byte(v>>(8*i)))
		}
	}
	return dst
}

// b32hStringLen is the length of the base32hex form of n bytes.
func b32hStringLen(n int) int { return (n*8 + 4) / 5 }

func appendB32HString(dst, b []byte) []byte {
	for ; len(b) >= 5; b = b[5:] {
		v := uint64(b[0])<<32 | uint64(b[1])<<24 | uint64(b[2])<<16 | uint64(b[3])<<8 | uint64(b[4])
		dst = append(dst,
			b32hAlphabet[v>>35], b32hAlphabet[v>>30&31], b32hAlphabet[v>>25&31], b32hAlphabet[v>>20&31],
			b32hAlphabet[v>>15&31], b32hAlphabet[v>>10&31], b32hAlphabet[v>>5&31], b32hAlphabet[v&31])
	}
	if len(b) > 0 {
		var v uint64
		for _, c := range b {
			v = v<<8 | uint64(c)
		}
		k := b32hStringLen(len(b))
		v <<= 5*k - 8*len(b) // zero bits complete the last digit
		for i := k - 1; i >= 0; i-- {
			dst = append(dst, b32hAlphabet[v>>(5*i)&31])
		}
	}
	return dst
}

// XEP-0082 date-times in UTC: YYYY-MM-DDThh:mm:ss[.f{1,9}]Z, years 0001 to
// 9999, no leap seconds.

const (
	minUnix = -62135596800 // 0001-01-01T00:00:00Z
	maxUnix = 253402300799 // 9999-12-31T23:59:59Z
)

var pow10 = [10]uint64{1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000}

func digits(s string, n int) (int, bool) {
	if len(s) < n {
		return 0, false
	}
	v := 0
	for i := 0; i < n; i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

// parseTime accepts the canonical XEP-0082 DateTime in UTC.
func parseTime(s string) (unix int64, fdigits int, frac uint64, ok bool) {
	if len(s) < 20 || len(s) > 30 || s[len(s)-1] != 'Z' ||
		s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return 0, 0, 0, false
	}
	y, ok1 := digits(s, 4)
	mo, ok2 := digits(s[5:], 2)
	d, ok3 := digits(s[8:], 2)
	h, ok4 := digits(s[11:], 2)
	mi, ok5 := digits(s[14:], 2)
	se, ok6 := digits(s[17:], 2)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || y < 1 || mo < 1 || mo > 12 ||
		d < 1 || d > daysIn(y, mo) || h > 23 || mi > 59 || se > 59 {
		return 0, 0, 0, false
	}
	switch rest := s[19 : len(s)-1]; {
	case rest == "":
	case rest[0] != '.' || len(rest) < 2 || len(rest) > 10:
		return 0, 0, 0, false
	default:
		fdigits = len(rest) - 1
		f, ok := digits(rest[1:], fdigits)
		if !ok {
			return 0, 0, 0, false
		}
		frac = uint64(f)
	}
	unix = (daysFromCivil(y, mo, d)*24+int64(h))*3600 + int64(mi)*60 + int64(se)
	return unix, fdigits, frac, true
}

func timeLen(fdigits int) int {
	if fdigits == 0 {
		return 20
	}
	return 21 + fdigits
}

func appendTimeString(dst []byte, unix int64, fdigits int, frac uint64) []byte {
	days := unix / 86400
	secs := unix % 86400
	if secs < 0 {
		secs += 86400
		days--
	}
	y, mo, d := civilFromDays(days)
	dst = appendDigits(dst, y, 4)
	dst = append(dst, '-')
	dst = appendDigits(dst, mo, 2)
	dst = append(dst, '-')
	dst = appendDigits(dst, d, 2)
	dst = append(dst, 'T')
	dst = appendDigits(dst, int(secs/3600), 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, int(secs/60%60), 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, int(secs%60), 2)
	if fdigits > 0 {
		dst = append(dst, '.')
		dst = appendDigits(dst, int(frac), fdigits)
	}
	return append(dst, 'Z')
}

func appendDigits(dst []byte, v, n int) []byte {
	var buf [10]byte
	for i := n - 1; i >= 0; i-- {
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	return append(dst, buf[:n]...)
}

func isLeap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

func daysIn(y, m int) int {
	switch m {
	case 2:
		if isLeap(y) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil counts days from 1970-01-01 to the proleptic Gregorian date
// (the era-based method: 400-year eras of 146097 days, years starting in
// March so the leap day comes last).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400 // y ≥ 0 here
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

// civilFromDays inverts daysFromCivil for dates from year 1 on.
func civilFromDays(z int64) (y, m, d int) {
	z += 719468
	era := z / 146097
	doe := int(z - era*146097)
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = doy - (153*mp+2)/5 + 1
	m = mp + 3
	if m > 12 {
		m -= 12
	}
	y = yoe + int(era)*400
	if m <= 2 {
		y++
	}
	return y, m, d
}

// splitJID cuts a JID-shaped string into local@domain/resource, keeping
// every byte: the parts joined again give s. It does no PRECIS checks: the
// encoding only has to be lossless; routing validates JIDs.
func splitJID(s string) (local, domain, resource string, ok bool) {
	bare := s
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			bare, resource = s[:i], s[i+1:]
			if resource == "" {
				return "", "", "", false
			}
			break
		}
	}
	domain = bare
	for i := 0; i < len(bare); i++ {
		if bare[i] == '@' {
			local, domain = bare[:i], bare[i+1:]
			if local == "" {
				return "", "", "", false
			}
			break
		}
	}
	if domain == "" {
		return "", "", "", false
	}
	for i := 0; i < len(domain); i++ {
		if domain[i] == '@' {
			return "", "", "", false
		}
	}
	return local, domain, resource, true
}
