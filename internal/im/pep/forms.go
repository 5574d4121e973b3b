package pep

import (
	"strconv"

	"github.com/parley-im/parley/stanza"
)

// Bounds on a submitted data form (publish-options, node configuration).
const (
	maxFormFields = 64
	maxFormValues = 16
)

// Node configuration fields this service understands.
const (
	fieldAccessModel  = "pubsub#access_model"
	fieldMaxItems     = "pubsub#max_items"
	fieldPersistItems = "pubsub#persist_items"
)

// nodeOptions are the configuration values a form asked for; nil means
// not given.
type nodeOptions struct {
	access   *string
	maxItems *int
}

// parseOptions reads a publish-options or node_config form (XEP-0004) of
// the given FORM_TYPE. Unknown fields are ignored (see docs/pep.md);
// values this service cannot honour are not-acceptable. A missing form is
// no options.
func (s *Service) parseOptions(x *stanza.Element, formType string) (nodeOptions, error) {
	var o nodeOptions
	if x == nil {
		return o, nil
	}
	if t := x.Attr("type"); t != "submit" && t != "" {
		return o, stanza.ErrBadRequest.WithText("form type must be submit")
	}
	n := 0
	for _, f := range x.Children {
		if f.Name != "field" || f.NS != nsData {
			continue
		}
		if n++; n > maxFormFields {
			return o, stanza.ErrNotAcceptable.WithText("too many form fields")
		}
		var values []string
		for _, v := range f.Children {
			if v.Name == "value" && v.NS == nsData {
				if len(values) == maxFormValues {
					return o, stanza.ErrNotAcceptable.WithText("too many values")
				}
				values = append(values, v.TextContent())
			}
		}
		first := ""
		if len(values) > 0 {
			first = values[0]
		}
		switch f.Attr("var") {
		case "FORM_TYPE":
			if first != formType {
				return o, stanza.ErrBadRequest.WithText("FORM_TYPE must be " + formType)
			}
		case fieldAccessModel:
			if !validAccess(first) {
				return o, stanza.ErrNotAcceptable.WithText("unsupported access model")
			}
			o.access = &first
		case fieldMaxItems:
			m, err := s.parseMaxItems(first)
			if err != nil {
				return o, err
			}
			o.maxItems = &m
		case fieldPersistItems:
			// Items are always persisted; either answer is accepted (a
			// client asking for less persistence loses nothing).
			if _, ok := parseBool(first); !ok {
				return o, stanza.ErrNotAcceptable.WithText("pubsub#persist_items must be a boolean")
			}
		}
	}
	return o, nil
}

// parseMaxItems reads pubsub#max_items: "max" is MaxItemsPerNode, and a
// larger number is lowered to it, so asking twice for the same value
// always meets the same precondition.
func (s *Service) parseMaxItems(v string) (int, error) {
	if v == "max" {
		return s.cfg.MaxItemsPerNode, nil
	}
	m, err := strconv.Atoi(v)
	if err != nil || m < 1 {
		return 0, stanza.ErrNotAcceptable.WithText("pubsub#max_items must be a positive number or max")
	}
	return min(m, s.cfg.MaxItemsPerNode), nil
}

func parseBool(v string) (value, ok bool) {
	switch v {
	case "1", "true":
		return true, true
	case "0", "false":
		return false, true
	}
	return false, false
}

// configForm is the node configuration form of XEP-0060 §8.2 with the
// fields this service supports.
func configForm(access string, maxItems, limit int) *stanza.Element {
	x := stanza.New("x", nsData).SetAttr("type", "form")
	field := func(name, typ, label string, values ...string) *stanza.Element {
		f := stanza.New("field", nsData).SetAttr("var", name).SetAttr("type", typ)
		if label != "" {
			f.SetAttr("label", label)
		}
		for _, v := range values {
			f.Append(stanza.New("value", nsData).AppendText(v))
		}
		x.Append(f)
		return f
	}
	field("FORM_TYPE", "hidden", "", NSNodeConfig)
	am := field(fieldAccessModel, "list-single", "Who may subscribe and retrieve items", access)
	for _, a := range []string{AccessOpen, AccessPresence, AccessRoster, AccessWhitelist} {
		am.Append(stanza.New("option", nsData).Append(stanza.New("value", nsData).AppendText(a)))
	}
	field(fieldMaxItems, "text-single", "Maximum number of items to persist (at most "+strconv.Itoa(limit)+")",
		strconv.Itoa(maxItems))
	field(fieldPersistItems, "boolean", "Persist items to storage", "1")
	field("pubsub#deliver_payloads", "boolean", "Deliver payloads with event notifications", "1")
	field("pubsub#deliver_notifications", "boolean", "Deliver event notifications", "1")
	field("pubsub#notify_retract", "boolean", "Notify subscribers when items are removed", "1")
	field("pubsub#send_last_published_item", "list-single", "When to send the last published item", "on_sub_and_presence")
	return x
}
