package muc

import (
	"strconv"

	"github.com/parley-im/parley/stanza"
)

// WhoIs values (muc#roomconfig_whois): who sees occupants' real JIDs.
const (
	WhoIsModerators = "moderators" // semi-anonymous
	WhoIsAnyone     = "anyone"     // non-anonymous
)

// AllowPM values (muc#roomconfig_allowpm): who may send private messages.
const (
	PMAnyone       = "anyone"
	PMParticipants = "participants"
	PMModerators   = "moderators"
	PMNone         = "none"
)

// RoomConfig is a room's configuration (the muc#roomconfig form).
type RoomConfig struct {
	Name          string `json:"name,omitempty"`
	Description   string `json:"desc,omitempty"`
	Persistent    bool   `json:"persistent,omitempty"`
	Public        bool   `json:"public,omitempty"`
	MembersOnly   bool   `json:"membersonly,omitempty"`
	Moderated     bool   `json:"moderated,omitempty"`
	Password      string `json:"password,omitempty"` // empty: no password
	MaxUsers      int    `json:"maxusers,omitempty"` // 0: the service's ceiling
	WhoIs         string `json:"whois,omitempty"`
	ChangeSubject bool   `json:"changesubject,omitempty"` // participants may change the subject
	AllowInvites  bool   `json:"allowinvites,omitempty"`  // participants may invite to a members-only room
	AllowPM       string `json:"allowpm,omitempty"`
	// Logging archives the room's messages (XEP-0313 on the room, and
	// the history that survives a restart). On by default: it is how
	// members catch up on what they missed.
	Logging bool `json:"logging,omitempty"`
}

// DefaultRoomConfig is XEP-0045's default configuration, with the archive on.
func DefaultRoomConfig() RoomConfig {
	return RoomConfig{
		Public:        true,
		WhoIs:         WhoIsModerators,
		ChangeSubject: false,
		AllowPM:       PMAnyone,
		Logging:       true,
	}
}

// configForm renders the owner's configuration form (§10.2).
func (r *room) configForm() *stanza.Element {
	c := r.cfg
	x := stanza.New("x", NSData).SetAttr("type", "form")
	x.Append(stanza.New("title", NSData).AppendText("Configuration of " + r.jid.String()))
	x.Append(hiddenField("FORM_TYPE", NSRoomConfig))
	x.Append(field("muc#roomconfig_roomname", "text-single", "Room name", c.Name))
	x.Append(field("muc#roomconfig_roomdesc", "text-single", "Description", c.Description))
	x.Append(field("muc#roomconfig_persistentroom", "boolean", "Persistent", boolStr(c.Persistent)))
	x.Append(field("muc#roomconfig_publicroom", "boolean", "Listed in the directory", boolStr(c.Public)))
	x.Append(field("muc#roomconfig_membersonly", "boolean", "Members only", boolStr(c.MembersOnly)))
	x.Append(field("muc#roomconfig_moderatedroom", "boolean", "Moderated", boolStr(c.Moderated)))
	x.Append(field("muc#roomconfig_passwordprotectedroom", "boolean", "Password protected", boolStr(c.Password != "")))
	x.Append(field("muc#roomconfig_roomsecret", "text-private", "Password", c.Password))
	x.Append(listField("muc#roomconfig_maxusers", "Maximum occupants", strconv.Itoa(r.occupantLimit()),
		"10", "20", "50", "100", "500", "1000", strconv.Itoa(r.s.cfg.MaxOccupantsPerRoom)))
	x.Append(listField("muc#roomconfig_whois", "Who may discover real JIDs", c.WhoIs, WhoIsModerators, WhoIsAnyone))
	x.Append(field("muc#roomconfig_changesubject", "boolean", "Participants may change the subject", boolStr(c.ChangeSubject)))
	x.Append(field("muc#roomconfig_allowinvites", "boolean", "Participants may invite", boolStr(c.AllowInvites)))
	x.Append(listField("muc#roomconfig_allowpm", "Who may send private messages", c.AllowPM, PMAnyone, PMParticipants, PMModerators, PMNone))
	x.Append(field("muc#roomconfig_enablelogging", "boolean", "Archive messages", boolStr(c.Logging)))
	return x
}

// applyConfig parses a submitted configuration form onto a copy of the
// current configuration. Unknown fields are ignored (§10.2: a client may
// submit fields of a newer form); bad values are not-acceptable.
func (r *room) applyConfig(x *stanza.Element) (RoomConfig, error) {
	c := r.cfg
	vals := formValues(x)
	if ft, ok := vals["FORM_TYPE"]; ok && (len(ft) != 1 || ft[0] != NSRoomConfig) {
		return c, stanza.ErrBadRequest.WithText("FORM_TYPE is not " + NSRoomConfig)
	}
	maxField := r.s.cfg.MaxFieldBytes
	text := func(name string, dst *string) error {
		v, ok := vals[name]
		if !ok {
			return nil
		}
		s := ""
		if len(v) > 0 {
			s = v[0]
		}
		if len(s) > maxField {
			return stanza.ErrNotAcceptable.WithText(name + " is too long")
		}
		*dst = s
		return nil
	}
	boolean := func(name string, dst *bool) error {
		v, ok := vals[name]
		if !ok {
			return nil
		}
		if len(v) != 1 {
			return stanza.ErrNotAcceptable.WithText(name + " needs one value")
		}
		switch v[0] {
		case "1", "true":
			*dst = true
		case "0", "false":
			*dst = false
		default:
			return stanza.ErrNotAcceptable.WithText(name + " is not a boolean")
		}
		return nil
	}
	choice := func(name string, dst *string, allowed ...string) error {
		v, ok := vals[name]
		if !ok {
			return nil
		}
		if len(v) != 1 {
			return stanza.ErrNotAcceptable.WithText(name + " needs one value")
		}
		for _, a := range allowed {
			if v[0] == a {
				*dst = a
				return nil
			}
		}
		return stanza.ErrNotAcceptable.WithText(name + " has an unknown value")
	}
	protected := c.Password != ""
	for _, err := range []error{
		text("muc#roomconfig_roomname", &c.Name),
		text("muc#roomconfig_roomdesc", &c.Description),
		boolean("muc#roomconfig_persistentroom", &c.Persistent),
		boolean("muc#roomconfig_publicroom", &c.Public),
		boolean("muc#roomconfig_membersonly", &c.MembersOnly),
		boolean("muc#roomconfig_moderatedroom", &c.Moderated),
		boolean("muc#roomconfig_passwordprotectedroom", &protected),
		text("muc#roomconfig_roomsecret", &c.Password),
		choice("muc#roomconfig_whois", &c.WhoIs, WhoIsModerators, WhoIsAnyone),
		boolean("muc#roomconfig_changesubject", &c.ChangeSubject),
		boolean("muc#roomconfig_allowinvites", &c.AllowInvites),
		choice("muc#roomconfig_allowpm", &c.AllowPM, PMAnyone, PMParticipants, PMModerators, PMNone),
		boolean("muc#roomconfig_enablelogging", &c.Logging),
	} {
		if err != nil {
			return r.cfg, err
		}
	}
	if v, ok := vals["muc#roomconfig_maxusers"]; ok && len(v) == 1 {
		switch n, err := strconv.Atoi(v[0]); {
		case v[0] == "" || v[0] == "none":
			c.MaxUsers = 0
		case err != nil || n < 1:
			return r.cfg, stanza.ErrNotAcceptable.WithText("muc#roomconfig_maxusers is not a positive number")
		case n > r.s.cfg.MaxOccupantsPerRoom:
			c.MaxUsers = r.s.cfg.MaxOccupantsPerRoom
		default:
			c.MaxUsers = n
		}
	}
	if !protected {
		c.Password = ""
	} else if c.Password == "" {
		return r.cfg, stanza.ErrNotAcceptable.WithText("a password-protected room needs a password")
	}
	return c, nil
}

// formValues reads the values of a submitted data form (XEP-0004), by var.
func formValues(x *stanza.Element) map[string][]string {
	out := map[string][]string{}
	for _, f := range x.Children {
		if f.Name != "field" || f.NS != NSData {
			continue
		}
		name := f.Attr("var")
		if name == "" {
			continue
		}
		var vs []string
		for _, v := range f.Children {
			if v.Name == "value" {
				vs = append(vs, v.TextContent())
			}
		}
		out[name] = vs
	}
	return out
}

func field(name, typ, label string, values ...string) *stanza.Element {
	f := stanza.New("field", NSData).SetAttr("var", name).SetAttr("type", typ)
	if label != "" {
		f.SetAttr("label", label)
	}
	for _, v := range values {
		f.Append(stanza.New("value", NSData).AppendText(v))
	}
	return f
}

func hiddenField(name, value string) *stanza.Element { return field(name, "hidden", "", value) }

func listField(name, label, value string, options ...string) *stanza.Element {
	f := field(name, "list-single", label, value)
	for _, o := range options {
		f.Append(stanza.New("option", NSData).Append(stanza.New("value", NSData).AppendText(o)))
	}
	return f
}

func boolStr(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
