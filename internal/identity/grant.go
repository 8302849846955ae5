package identity

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rempart/rempart/internal/session"
)

// A grant is what one login gave one client: the scopes, how the customer
// authenticated and the profile claims to answer userinfo with. It is a
// session record ("g:" + id) whose subject is the customer, so the session
// store's per-customer bound and logout-everywhere apply to it. The current
// refresh token of the grant is a second record ("rt:" + hash of the token)
// whose subject is "g:" + id; rotation deletes the old record before it
// creates the new one, and Delete's answer is the atomic test for reuse.
//
// Nothing here reads the user directory: a customer holding a grant refreshes
// tokens and reads userinfo while the directory is stuck.
const (
	grantPrefix        = "g:"
	refreshPrefixStore = "rt:"
	browserPrefix      = "bs:"
)

// Attribute names in grant and browser-session records.
const (
	attrScope    = "scope"
	attrAuthTime = "at"
	attrName     = "name"
	attrPhone    = "phone"
	attrEmail    = "email"
)

// ErrGrantGone: the login behind a token was revoked, logged out or expired.
var ErrGrantGone = errors.New("grant revoked or expired")

// grant is a decoded grant record.
type grant struct {
	id       string
	subject  string
	clientID string
	scopes   []string
	amr      []string
	authTime time.Time
	expires  time.Time
	profile  map[string]string
	// current are the scopes of the refresh request being served, a subset
	// of scopes (op narrows them on request).
	current []string
}

func grantFromSession(s session.Session) grant {
	at, _ := strconv.ParseInt(s.Attrs[attrAuthTime], 10, 64)
	return grant{
		id:       strings.TrimPrefix(s.ID, grantPrefix),
		subject:  s.Subject,
		clientID: s.ClientID,
		scopes:   strings.Fields(s.Attrs[attrScope]),
		amr:      s.AMR,
		authTime: time.Unix(at, 0),
		expires:  s.ExpiresAt,
		profile:  s.Attrs,
	}
}

// RefreshTokenRequest (op) for a grant.
func (g *grant) GetAMR() []string            { return g.amr }
func (g *grant) GetAudience() []string       { return []string{g.clientID} }
func (g *grant) GetAuthTime() time.Time      { return g.authTime }
func (g *grant) GetClientID() string         { return g.clientID }
func (g *grant) GetScopes() []string         { return g.current }
func (g *grant) GetSubject() string          { return g.subject }
func (g *grant) SetCurrentScopes(s []string) { g.current = s }

type grants struct {
	store session.Store
	now   func() time.Time
	ttl   time.Duration
	idle  time.Duration
}

// create stores a grant for a finished login and, when offline access was
// granted, its first refresh token.
func (gs *grants) create(ctx context.Context, a *authRequest, withRefresh bool) (string, error) {
	now := gs.now()
	exp := a.authTime.Add(gs.ttl)
	if !exp.After(now) {
		exp = now.Add(time.Minute)
	}
	attrs := map[string]string{
		attrScope:    strings.Join(a.scopes, " "),
		attrAuthTime: strconv.FormatInt(a.authTime.Unix(), 10),
	}
	for k, v := range a.profile {
		if v != "" {
			attrs[k] = v
		}
	}
	g := session.Session{
		ID: grantPrefix + a.grant, Subject: a.subject, ClientID: a.clientID, AMR: a.amr,
		CreatedAt: now, ExpiresAt: exp, IdleTimeout: gs.idle, Attrs: attrs,
	}
	if err := storeErr(ctx, gs.store.Create(ctx, g)); err != nil {
		return "", fmt.Errorf("store grant: %w", err)
	}
	if !withRefresh {
		return "", nil
	}
	return gs.issueRefresh(ctx, a.grant, exp)
}

func (gs *grants) issueRefresh(ctx context.Context, grantID string, exp time.Time) (string, error) {
	tok := newRefreshToken(grantID)
	h := tokenHash(tok)
	rec := session.Session{
		ID: refreshPrefixStore + b64.EncodeToString(h[:]), Subject: grantPrefix + grantID,
		CreatedAt: gs.now(), ExpiresAt: exp,
	}
	if err := storeErr(ctx, gs.store.Create(ctx, rec)); err != nil {
		return "", fmt.Errorf("store refresh token: %w", err)
	}
	return tok, nil
}

// browserRecordID is the store id of a browser session: a hash of the SSO
// cookie's value (192 random bits, so a plain hash suffices), so a copy of
// the store (the durable files, a Redis dump) holds no cookie that logs a
// browser in.
func browserRecordID(sid string) string {
	h := tokenHash(sid)
	return browserPrefix + b64.EncodeToString(h[:])
}

func refreshRecordID(tok string) string {
	h := tokenHash(tok)
	return refreshPrefixStore + b64.EncodeToString(h[:])
}

// get returns the live grant with the id.
func (gs *grants) get(ctx context.Context, id string) (grant, error) {
	s, err := gs.store.Get(ctx, grantPrefix+id)
	if errors.Is(storeErr(ctx, err), session.ErrNotFound) {
		return grant{}, ErrGrantGone
	}
	if err != nil {
		return grant{}, err
	}
	return grantFromSession(s), nil
}

// errReuse means a refresh token was presented after it had been rotated.
var errReuse = errors.New("refresh token reused; grant revoked")

// lookup finds the grant of a current refresh token. A well-formed token of
// a live grant that is no longer current was rotated away: someone is
// replaying it, so the whole grant is revoked (reuse detection).
func (gs *grants) lookup(ctx context.Context, tok string) (grant, error) {
	id, ok := parseRefreshToken(tok)
	if !ok {
		return grant{}, ErrGrantGone
	}
	g, err := gs.get(ctx, id)
	if err != nil {
		return grant{}, err
	}
	if _, err := gs.store.Get(ctx, refreshRecordID(tok)); errors.Is(storeErr(ctx, err), session.ErrNotFound) {
		return grant{}, errReuse
	} else if err != nil {
		return grant{}, err
	}
	g.current = g.scopes
	return g, nil
}

// rotate spends tok and issues its successor. Of two concurrent rotations
// of the same token only one Delete succeeds; the other is reuse.
func (gs *grants) rotate(ctx context.Context, g *grant, tok string) (string, error) {
	if err := storeErr(ctx, gs.store.Delete(ctx, refreshRecordID(tok))); errors.Is(err, session.ErrNotFound) {
		return "", errReuse
	} else if err != nil {
		return "", err
	}
	if _, err := gs.store.Touch(ctx, grantPrefix+g.id); storeErr(ctx, err) != nil {
		if errors.Is(err, session.ErrNotFound) {
			return "", ErrGrantGone
		}
		return "", err
	}
	return gs.issueRefresh(ctx, g.id, g.expires)
}

// revoke deletes the grant and its refresh token.
func (gs *grants) revoke(ctx context.Context, id string) error {
	err := gs.store.Delete(ctx, grantPrefix+id)
	if err != nil && !errors.Is(err, session.ErrNotFound) {
		return err
	}
	_, err = gs.store.DeleteSubject(ctx, grantPrefix+id)
	return err
}

// GrantLive looks the grant an access token was minted from (Claims.Grant)
// up in the session store: nil while the customer's login is live. rempart's
// edge never calls it (tokens are verified from keys alone, revocations are
// pushed); it is the per-request session lookup of the 2025 architecture,
// which the drill's legacy arm rebuilds.
func (p *Provider) GrantLive(ctx context.Context, grant string) error {
	if grant == "" {
		return ErrGrantGone
	}
	if _, err := p.sessions.Get(ctx, grantPrefix+grant); err != nil {
		if errors.Is(err, session.ErrNotFound) {
			return ErrGrantGone
		}
		return err
	}
	return nil
}
