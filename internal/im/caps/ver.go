package caps

import (
	"cmp"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strings"

	"github.com/parley-im/parley/stanza"
)

// Bounds on a disco#info answer: it comes from a client, so it is hostile
// input like any other. Real clients announce a few dozen features.
const (
	MaxFeatures   = 512  // features in one answer
	MaxIdentities = 32   // identities in one answer
	MaxForms      = 16   // extended info forms in one answer
	MaxFields     = 64   // fields per form
	MaxValues     = 32   // values per field
	MaxStringLen  = 1024 // any one feature, identity attribute, var or value
)

// ErrIllFormed is returned (wrapped) by Ver for a disco#info answer that
// XEP-0115 §5.4 says must not be used for verification, or that exceeds
// the bounds above.
var ErrIllFormed = errors.New("caps: ill-formed disco#info")

// ErrUnsupportedHash is returned (wrapped) by Ver for a hash it cannot
// compute.
var ErrUnsupportedHash = errors.New("caps: unsupported hash")

// hashes are the algorithms (IANA names, as in the caps 'hash' attribute)
// whose ver the cache verifies. sha-1 is the one XEP-0115 mandates; the
// others cost nothing to accept. md5 is deliberately absent: a ver is
// trusted across entities, so a hash with practical second preimages
// would let one client poison the features others are known by.
var hashes = map[string]func() hash.Hash{
	"sha-1":   sha1.New,
	"sha-224": sha256.New224,
	"sha-256": sha256.New,
	"sha-384": sha512.New384,
	"sha-512": sha512.New,
}

// Verifiable reports whether the cache can verify a ver made with the
// named hash.
func Verifiable(hashName string) bool { return hashes[hashName] != nil }

type identity struct{ category, typ, lang, name string }

type form struct {
	formType string
	fields   []field
}

type field struct {
	name   string
	values []string
}

// info is a parsed disco#info answer.
type info struct {
	identities []identity
	features   []string
	forms      []form
}

func checkLen(s string) error {
	if len(s) > MaxStringLen {
		return fmt.Errorf("%w: string of %d bytes", ErrIllFormed, len(s))
	}
	return nil
}

// parseInfo reads a disco#info <query/> within the bounds, applying the
// ill-formedness rules of XEP-0115 §5.4 (duplicate identities, features or
// form types). Forms without a FORM_TYPE are ignored, as §5.4 says.
func parseInfo(q *stanza.Element) (*info, error) {
	in := &info{}
	seenID := map[identity]bool{}
	seenFeat := map[string]bool{}
	seenForm := map[string]bool{}
	for _, c := range q.Children {
		if c.Name == "" {
			continue
		}
		switch {
		case c.Name == "identity" && c.NS == nsDiscoInfo:
			id := identity{c.Attr("category"), c.Attr("type"), c.Attr("xml:lang"), c.Attr("name")}
			for _, s := range []string{id.category, id.typ, id.lang, id.name} {
				if err := checkLen(s); err != nil {
					return nil, err
				}
			}
			if seenID[id] {
				return nil, fmt.Errorf("%w: duplicate identity %s/%s", ErrIllFormed, id.category, id.typ)
			}
			seenID[id] = true
			if len(in.identities) == MaxIdentities {
				return nil, fmt.Errorf("%w: more than %d identities", ErrIllFormed, MaxIdentities)
			}
			in.identities = append(in.identities, id)
		case c.Name == "feature" && c.NS == nsDiscoInfo:
			v := c.Attr("var")
			if err := checkLen(v); err != nil {
				return nil, err
			}
			if seenFeat[v] {
				return nil, fmt.Errorf("%w: duplicate feature %q", ErrIllFormed, v)
			}
			seenFeat[v] = true
			if len(in.features) == MaxFeatures {
				return nil, fmt.Errorf("%w: more than %d features", ErrIllFormed, MaxFeatures)
			}
			in.features = append(in.features, v)
		case c.Name == "x" && c.NS == nsData:
			f, ok, err := parseForm(c)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			if seenForm[f.formType] {
				return nil, fmt.Errorf("%w: two forms of type %q", ErrIllFormed, f.formType)
			}
			seenForm[f.formType] = true
			if len(in.forms) == MaxForms {
				return nil, fmt.Errorf("%w: more than %d forms", ErrIllFormed, MaxForms)
			}
			in.forms = append(in.forms, f)
		}
	}
	return in, nil
}

// parseForm reads an extended info form; ok is false for a form without a
// FORM_TYPE, which takes no part in the ver.
func parseForm(x *stanza.Element) (form, bool, error) {
	var f form
	hasType := false
	for _, c := range x.Children {
		if c.Name != "field" || c.NS != nsData {
			continue
		}
		name := c.Attr("var")
		if err := checkLen(name); err != nil {
			return form{}, false, err
		}
		var values []string
		for _, v := range c.Children {
			if v.Name != "value" || v.NS != nsData {
				continue
			}
			s := v.TextContent()
			if err := checkLen(s); err != nil {
				return form{}, false, err
			}
			if len(values) == MaxValues {
				return form{}, false, fmt.Errorf("%w: more than %d values in field %q", ErrIllFormed, MaxValues, name)
			}
			values = append(values, s)
		}
		if name == "FORM_TYPE" {
			if hasType {
				return form{}, false, fmt.Errorf("%w: two FORM_TYPE fields", ErrIllFormed)
			}
			hasType = true
			for _, v := range values[min(1, len(values)):] {
				if v != values[0] {
					return form{}, false, fmt.Errorf("%w: FORM_TYPE with different values", ErrIllFormed)
				}
			}
			if len(values) > 0 {
				f.formType = values[0]
			}
			continue
		}
		if len(f.fields) == MaxFields {
			return form{}, false, fmt.Errorf("%w: more than %d fields", ErrIllFormed, MaxFields)
		}
		f.fields = append(f.fields, field{name: name, values: values})
	}
	return f, hasType, nil
}

// verString builds the XEP-0115 §5.1 verification string S.
func (in *info) verString() string {
	var b strings.Builder
	ids := slices.Clone(in.identities)
	slices.SortFunc(ids, func(a, b identity) int {
		return cmp.Or(cmp.Compare(a.category, b.category), cmp.Compare(a.typ, b.typ),
			cmp.Compare(a.lang, b.lang), cmp.Compare(a.name, b.name))
	})
	for _, id := range ids {
		b.WriteString(id.category + "/" + id.typ + "/" + id.lang + "/" + id.name + "<")
	}
	for _, f := range slices.Sorted(slices.Values(in.features)) {
		b.WriteString(f + "<")
	}
	forms := slices.Clone(in.forms)
	slices.SortFunc(forms, func(a, b form) int { return cmp.Compare(a.formType, b.formType) })
	for _, f := range forms {
		b.WriteString(f.formType + "<")
		fields := slices.Clone(f.fields)
		slices.SortFunc(fields, func(a, b field) int { return cmp.Compare(a.name, b.name) })
		for _, fl := range fields {
			b.WriteString(fl.name + "<")
			for _, v := range slices.Sorted(slices.Values(fl.values)) {
				b.WriteString(v + "<")
			}
		}
	}
	return b.String()
}

func (in *info) ver(hashName string) (string, error) {
	newHash := hashes[hashName]
	if newHash == nil {
		return "", fmt.Errorf("%w: %q", ErrUnsupportedHash, hashName)
	}
	h := newHash()
	h.Write([]byte(in.verString()))
	return base64.StdEncoding.EncodeToString(h.Sum(nil)), nil
}

// Ver computes the XEP-0115 verification string of a disco#info <query/>
// element hashed with hashName ("sha-1", "sha-256", …): what an entity with
// exactly that disco#info should announce as its caps ver.
func Ver(query *stanza.Element, hashName string) (string, error) {
	in, err := parseInfo(query)
	if err != nil {
		return "", err
	}
	return in.ver(hashName)
}
