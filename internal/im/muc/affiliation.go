package muc

// Affiliation is a long-lived relation of a bare JID to a room (§5.2),
// ordered from least to most privileged.
type Affiliation uint8

// Affiliations.
const (
	AffOutcast Affiliation = iota
	AffNone
	AffMember
	AffAdmin
	AffOwner
)

var affNames = [...]string{"outcast", "none", "member", "admin", "owner"}

func (a Affiliation) String() string { return affNames[a] }

func parseAffiliation(s string) (Affiliation, bool) {
	for i, n := range affNames {
		if n == s {
			return Affiliation(i), true
		}
	}
	return 0, false
}

// Role is an occupant's role in the current visit (§5.1).
type Role uint8

// Roles.
const (
	RoleNone Role = iota
	RoleVisitor
	RoleParticipant
	RoleModerator
)

var roleNames = [...]string{"none", "visitor", "participant", "moderator"}

func (r Role) String() string { return roleNames[r] }

func parseRole(s string) (Role, bool) {
	for i, n := range roleNames {
		if n == s {
			return Role(i), true
		}
	}
	return 0, false
}

// affEntry is one stored affiliation.
type affEntry struct {
	Aff    Affiliation
	Reason string
}

// defaultRole is the role an affiliation enters the room with (§5.1.2).
func (r *room) defaultRole(a Affiliation) Role {
	switch a {
	case AffOwner, AffAdmin:
		return RoleModerator
	case AffMember:
		return RoleParticipant
	case AffNone:
		if r.cfg.Moderated {
			return RoleVisitor
		}
		return RoleParticipant
	}
	return RoleNone
}
