package authn_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"limen/libs/authn"
)

const issuer, audience = "limen", "limen-api"

type signer struct {
	kid  string
	priv ed25519.PrivateKey
}

func newSigner(t *testing.T, kid string) signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return signer{kid: kid, priv: priv}
}

func (s signer) sign(t *testing.T, claims authn.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	tok.Header["kid"] = s.kid
	out, err := tok.SignedString(s.priv)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func validClaims() authn.Claims {
	now := time.Now()
	return authn.Claims{
		UserID: 7, Username: "ada", Role: authn.RoleUser, Approved: true, Type: authn.TokenTypeAccess,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject: "7", Issuer: issuer, Audience: jwt.ClaimStrings{audience},
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)), ID: "j1",
		},
	}
}

// jwksServer publishes the public keys of signers the way auth-service does.
func jwksServer(t *testing.T, signers ...signer) *httptest.Server {
	t.Helper()
	store := jwkset.NewMemoryStorage()
	for _, s := range signers {
		jwk, err := jwkset.NewJWKFromKey(s.priv.Public(), jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: s.kid, ALG: jwkset.AlgEdDSA, USE: jwkset.UseSig}})
		if err != nil {
			t.Fatal(err)
		}
		if err := store.KeyWrite(context.Background(), jwk); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := store.JSONPublic(r.Context())
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func newVerifier(t *testing.T, url string) *authn.Verifier {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	v, err := authn.NewVerifier(ctx, authn.VerifierConfig{JWKSURL: url, Issuer: issuer, Audience: audience})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVerify_ValidAccessToken_ReturnsClaims(t *testing.T) {
	key := newSigner(t, "k1")
	v := newVerifier(t, jwksServer(t, key).URL)

	claims, err := v.Verify(key.sign(t, validClaims()))
	if err != nil {
		t.Fatal(err)
	}
	if claims.UserID != 7 || claims.Username != "ada" || claims.Role != authn.RoleUser || claims.IsAdmin() || !claims.Approved {
		t.Fatalf("unexpected claims %+v", claims)
	}
}

func TestVerify_ForgedTokens_AreRefused(t *testing.T) {
	key := newSigner(t, "k1")
	other := newSigner(t, "k1")
	v := newVerifier(t, jwksServer(t, key).URL)
	valid := key.sign(t, validClaims())
	parts := strings.Split(valid, ".")

	noneToken, err := jwt.NewWithClaims(jwt.SigningMethodNone, validClaims()).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	hsTok := jwt.NewWithClaims(jwt.SigningMethodHS256, validClaims())
	hsTok.Header["kid"] = "k1"
	hsToken, err := hsTok.SignedString([]byte(key.priv.Public().(ed25519.PublicKey)))
	if err != nil {
		t.Fatal(err)
	}
	tamperedPayload := base64.RawURLEncoding.EncodeToString([]byte(`{"user_id":1,"sub":"1","username":"root","role":"admin","typ":"access","iss":"limen","aud":["limen-api"],"exp":9999999999,"iat":1}`))

	expired := validClaims()
	expired.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Minute))
	refresh := validClaims()
	refresh.Type = authn.TokenTypeRefresh
	wrongAudience := validClaims()
	wrongAudience.Audience = jwt.ClaimStrings{"someone-else"}
	wrongIssuer := validClaims()
	wrongIssuer.Issuer = "evil"
	noExpiry := validClaims()
	noExpiry.ExpiresAt = nil
	badRole := validClaims()
	badRole.Role = "root"
	subjectMismatch := validClaims()
	subjectMismatch.Subject = "1"

	cases := map[string]string{
		"empty":              "",
		"garbage":            "not.a.jwt",
		"alg none":           noneToken,
		"HS256 with pub key": hsToken,
		"tampered payload":   parts[0] + "." + tamperedPayload + "." + parts[2],
		"other key same kid": other.sign(t, validClaims()),
		"unknown kid":        newSigner(t, "k2").sign(t, validClaims()),
		"expired":            key.sign(t, expired),
		"refresh token":      key.sign(t, refresh),
		"wrong audience":     key.sign(t, wrongAudience),
		"wrong issuer":       key.sign(t, wrongIssuer),
		"no expiry":          key.sign(t, noExpiry),
		"unknown role":       key.sign(t, badRole),
		"sub/user_id differ": key.sign(t, subjectMismatch),
	}
	for name, token := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := v.Verify(token); err == nil {
				t.Fatal("forged token accepted")
			}
		})
	}
}

func TestVerify_RotatedKey_IsFetchedOnFirstUse(t *testing.T) {
	oldKey, newKey := newSigner(t, "old"), newSigner(t, "new")
	keys := []signer{oldKey}
	var current http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { current.ServeHTTP(w, r) }))
	defer srv.Close()
	current = jwksServer(t, keys...).Config.Handler
	v := newVerifier(t, srv.URL)
	if _, err := v.Verify(oldKey.sign(t, validClaims())); err != nil {
		t.Fatal(err)
	}

	current = jwksServer(t, oldKey, newKey).Config.Handler
	if _, err := v.Verify(newKey.sign(t, validClaims())); err != nil {
		t.Fatalf("token of the rotated-in key refused: %v", err)
	}
}

func TestVerify_CachedTokenStillExpires(t *testing.T) {
	key := newSigner(t, "k1")
	v, err := authn.NewStaticVerifier(func(*jwt.Token) (any, error) { return key.priv.Public(), nil },
		authn.VerifierConfig{Issuer: issuer, Audience: audience})
	if err != nil {
		t.Fatal(err)
	}
	claims := validClaims()
	claims.ExpiresAt = jwt.NewNumericDate(time.Now().Add(1500 * time.Millisecond))
	token := key.sign(t, claims)
	if _, err := v.Verify(token); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	if _, err := v.Verify(token); err == nil {
		t.Fatal("expired token served from cache")
	}
}

// revokeSwitch revokes every token once flipped.
type revokeSwitch struct{ on bool }

func (r *revokeSwitch) Revoked(*authn.Claims) bool { return r.on }

// A revocation reaches tokens already in the cache, not only new ones.
func TestVerify_RevokedTokenRefusedEvenWhenCached(t *testing.T) {
	key := newSigner(t, "k1")
	revoked := &revokeSwitch{}
	v, err := authn.NewStaticVerifier(func(*jwt.Token) (any, error) { return key.priv.Public(), nil },
		authn.VerifierConfig{Issuer: issuer, Audience: audience, Revocations: revoked})
	if err != nil {
		t.Fatal(err)
	}
	token := key.sign(t, validClaims())
	if _, err := v.Verify(token); err != nil {
		t.Fatal(err)
	}
	revoked.on = true
	if _, err := v.Verify(token); err == nil {
		t.Fatal("a revoked token was served from the cache")
	}
	if _, err := v.Verify(key.sign(t, validClaims())); err == nil {
		t.Fatal("a revoked token was accepted")
	}
}

func BenchmarkVerify(b *testing.B) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	keys := func(*jwt.Token) (any, error) { return priv.Public(), nil }
	tokens := make([]string, 2)
	for i := range tokens {
		claims := validClaims()
		claims.ID = string(rune('a' + i))
		tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
		tok.Header["kid"] = "k1"
		tokens[i], _ = tok.SignedString(priv)
	}
	b.Run("uncached", func(b *testing.B) {
		// Two tokens through a one-entry cache: every call checks the signature.
		v, _ := authn.NewStaticVerifier(keys, authn.VerifierConfig{Issuer: issuer, Audience: audience, CacheSize: 1})
		i := 0
		for b.Loop() {
			i++
			if _, err := v.Verify(tokens[i%2]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		v, _ := authn.NewStaticVerifier(keys, authn.VerifierConfig{Issuer: issuer, Audience: audience})
		for b.Loop() {
			if _, err := v.Verify(tokens[0]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestVerify_CacheKeyDoesNotAliasTheCallersBuffer(t *testing.T) {
	key := newSigner(t, "k1")
	v, err := authn.NewStaticVerifier(func(*jwt.Token) (any, error) { return key.priv.Public(), nil },
		authn.VerifierConfig{Issuer: issuer, Audience: audience})
	if err != nil {
		t.Fatal(err)
	}
	ada, grace := validClaims(), validClaims()
	grace.UserID, grace.Subject, grace.Username = 8, "8", "bob"
	adaToken, graceToken := key.sign(t, ada), key.sign(t, grace)
	if len(adaToken) != len(graceToken) {
		t.Skip("tokens differ in length; the aliasing case needs equal lengths")
	}
	// Fiber reuses request buffers: simulate one holding ada's token, then rewritten with bob's.
	buf := []byte(adaToken)
	if _, err := v.Verify(unsafeString(buf)); err != nil {
		t.Fatal(err)
	}
	copy(buf, graceToken)
	claims, err := v.Verify(graceToken)
	if err != nil {
		t.Fatal(err)
	}
	if claims.UserID != 8 {
		t.Fatalf("bob's token verified as user %d", claims.UserID)
	}
}

func unsafeString(b []byte) string { return unsafe.String(&b[0], len(b)) }
