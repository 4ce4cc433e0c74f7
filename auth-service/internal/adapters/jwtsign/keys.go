// Package jwtsign holds auth-service's Ed25519 signing keys, signs access tokens with the newest and
// publishes all of them as a JWKS, so keys rotate by adding a file and restarting.
package jwtsign

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"limen/auth-service/internal/domain"
	"limen/libs/authn"
)

type key struct {
	id      string
	private ed25519.PrivateKey
	modTime time.Time
}

// KeySet is the loaded key directory.
type KeySet struct {
	keys     []key // newest first
	byID     map[string]ed25519.PublicKey
	jwks     []byte
	issuer   string
	audience string
	ttl      time.Duration
}

// Config says where keys live and what tokens claim.
type Config struct {
	Dir       string
	Issuer    string
	Audience  string
	AccessTTL time.Duration
}

// Load reads every *.pem (PKCS#8 Ed25519) in cfg.Dir, generating a first key when there is none.
func Load(cfg Config) (*KeySet, error) {
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, err
	}
	paths, err := filepath.Glob(filepath.Join(cfg.Dir, "*.pem"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		path, err := generate(cfg.Dir)
		if err != nil {
			return nil, err
		}
		paths = []string{path}
	}
	ks := &KeySet{byID: map[string]ed25519.PublicKey{}, issuer: cfg.Issuer, audience: cfg.Audience, ttl: cfg.AccessTTL}
	store := jwkset.NewMemoryStorage()
	for _, path := range paths {
		k, err := readKey(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		ks.keys = append(ks.keys, k)
		ks.byID[k.id] = k.private.Public().(ed25519.PublicKey)
		jwk, err := jwkset.NewJWKFromKey(k.private.Public(), jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{
			KID: k.id, ALG: jwkset.AlgEdDSA, USE: jwkset.UseSig}})
		if err != nil {
			return nil, err
		}
		if err := store.KeyWrite(context.Background(), jwk); err != nil {
			return nil, err
		}
	}
	sort.Slice(ks.keys, func(i, j int) bool { return ks.keys[i].modTime.After(ks.keys[j].modTime) })
	if ks.jwks, err = store.JSONPublic(context.Background()); err != nil {
		return nil, err
	}
	return ks, nil
}

// JWKS is the public key set as served at /api/auth/jwks.
func (ks *KeySet) JWKS() []byte { return ks.jwks }

// SigningKeyID is the kid new tokens carry.
func (ks *KeySet) SigningKeyID() string { return ks.keys[0].id }

// Keyfunc verifies tokens against this set without a round trip to the JWKS endpoint.
func (ks *KeySet) Keyfunc(t *jwt.Token) (any, error) {
	kid, _ := t.Header["kid"].(string)
	pub, ok := ks.byID[kid]
	if !ok {
		return nil, errors.New("unknown kid")
	}
	return pub, nil
}

// Issue signs an access token for u (implements app.AccessTokens).
func (ks *KeySet) Issue(u *domain.User, sessionID uuid.UUID, now time.Time) (string, time.Time, error) {
	expires := now.Add(ks.ttl)
	claims := authn.Claims{
		UserID: u.ID, Username: u.Username, Role: string(u.Role), Approved: u.Approved, Type: authn.TokenTypeAccess,
		Version: u.TokenVersion, SessionID: sessionID.String(),
		RegisteredClaims: jwt.RegisteredClaims{
			Subject: authn.Subject(u.ID), Issuer: ks.issuer, Audience: jwt.ClaimStrings{ks.audience},
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(expires), ID: uuid.NewString(),
		},
	}
	tok := jwt.NewWithClaims(authn.SigningMethod, claims)
	tok.Header["kid"] = ks.keys[0].id
	signed, err := tok.SignedString(ks.keys[0].private)
	return signed, expires, err
}

func readKey(path string) (key, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return key{}, err
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return key{}, errors.New("no PEM block")
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return key{}, err
	}
	priv, ok := parsed.(ed25519.PrivateKey)
	if !ok {
		return key{}, errors.New("not an Ed25519 key")
	}
	info, err := os.Stat(path)
	if err != nil {
		return key{}, err
	}
	return key{id: thumbprint(priv.Public().(ed25519.PublicKey)), private: priv, modTime: info.ModTime()}, nil
}

// thumbprint is the RFC 7638 JWK thumbprint, a kid that is stable and derived from the key itself.
func thumbprint(pub ed25519.PublicKey) string {
	canonical, _ := json.Marshal(struct {
		Crv string `json:"crv"`
		Kty string `json:"kty"`
		X   string `json:"x"`
	}{"Ed25519", "OKP", base64.RawURLEncoding.EncodeToString(pub)})
	sum := sha256.Sum256(canonical)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func generate(dir string) (string, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "signing-"+time.Now().UTC().Format("20060102T150405Z")+".pem")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		return "", err
	}
	return path, f.Close()
}
