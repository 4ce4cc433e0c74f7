// Package jwttest issues LIMEN access tokens for tests of services that verify them, with the public
// key served as a JWKS the way auth-service serves it.
package jwttest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"limen/libs/authn"
)

// Issuer and Audience are what Issuer's tokens claim.
const (
	Issuer   = "limen"
	Audience = "limen-api"
)

// KeyIssuer signs tokens with one Ed25519 key published at JWKSURL.
type KeyIssuer struct {
	KID     string
	Private ed25519.PrivateKey
	JWKSURL string
}

// New starts a JWKS server for a fresh key; it stops with the test.
func New(t testing.TB) *KeyIssuer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ki := &KeyIssuer{KID: "test-key", Private: priv}
	store := jwkset.NewMemoryStorage()
	jwk, err := jwkset.NewJWKFromKey(priv.Public(), jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: ki.KID, ALG: jwkset.AlgEdDSA, USE: jwkset.UseSig}})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.KeyWrite(context.Background(), jwk); err != nil {
		t.Fatal(err)
	}
	body, err := store.JSONPublic(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	ki.JWKSURL = srv.URL
	return ki
}

// Claims are valid access-token claims for the user, an hour long.
func Claims(userID int64, role string) authn.Claims {
	now := time.Now()
	return authn.Claims{
		UserID: userID, Username: "user" + strconv.FormatInt(userID, 10), Role: role, Type: authn.TokenTypeAccess,
		RegisteredClaims: jwt.RegisteredClaims{
			Subject: authn.Subject(userID), Issuer: Issuer, Audience: jwt.ClaimStrings{Audience},
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)), ID: uuid.NewString(),
		},
	}
}

// Sign signs claims with the issuer's key and kid.
func (ki *KeyIssuer) Sign(t testing.TB, claims authn.Claims) string {
	t.Helper()
	tok := jwt.NewWithClaims(authn.SigningMethod, claims)
	tok.Header["kid"] = ki.KID
	signed, err := tok.SignedString(ki.Private)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// Token is a valid access token for the user.
func (ki *KeyIssuer) Token(t testing.TB, userID int64, role string) string {
	return ki.Sign(t, Claims(userID, role))
}
