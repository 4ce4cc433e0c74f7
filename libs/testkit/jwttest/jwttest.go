// Package jwttest issues LIMEN access tokens for tests and benchmarks of services that verify them,
// with the public key served as a JWKS the way auth-service serves it.
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
	jwks    []byte
}

// Generate makes a fresh key; serve JWKSHandler somewhere and set JWKSURL to use it outside tests.
func Generate() (*KeyIssuer, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	ki := &KeyIssuer{KID: "test-key", Private: priv}
	store := jwkset.NewMemoryStorage()
	jwk, err := jwkset.NewJWKFromKey(priv.Public(), jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: ki.KID, ALG: jwkset.AlgEdDSA, USE: jwkset.UseSig}})
	if err != nil {
		return nil, err
	}
	if err := store.KeyWrite(context.Background(), jwk); err != nil {
		return nil, err
	}
	if ki.jwks, err = store.JSONPublic(context.Background()); err != nil {
		return nil, err
	}
	return ki, nil
}

// JWKSHandler serves the public key as auth-service serves its keys.
func (ki *KeyIssuer) JWKSHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(ki.jwks)
	})
}

// New generates a key and serves its JWKS until the test ends.
func New(t testing.TB) *KeyIssuer {
	t.Helper()
	ki, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ki.JWKSHandler())
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

// SignClaims signs claims with the issuer's key and kid.
func (ki *KeyIssuer) SignClaims(claims authn.Claims) (string, error) {
	tok := jwt.NewWithClaims(authn.SigningMethod, claims)
	tok.Header["kid"] = ki.KID
	return tok.SignedString(ki.Private)
}

// Sign is SignClaims for tests.
func (ki *KeyIssuer) Sign(t testing.TB, claims authn.Claims) string {
	t.Helper()
	signed, err := ki.SignClaims(claims)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

// Token is a valid access token for the user.
func (ki *KeyIssuer) Token(t testing.TB, userID int64, role string) string {
	return ki.Sign(t, Claims(userID, role))
}
