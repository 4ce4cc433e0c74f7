package authn

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// ErrInvalidToken covers every reason a token is refused; callers answer 401 without saying which.
var ErrInvalidToken = errors.New("invalid token")

// VerifierConfig says where the keys are and what the tokens must claim.
type VerifierConfig struct {
	JWKSURL  string
	Issuer   string
	Audience string
	// CacheSize bounds how many verified tokens are remembered (0: 10,000). A hit skips the signature
	// check, which is most of a request's cost at the gateway.
	CacheSize int
	// Revocations, when set, refuses tokens that auth-service has revoked since it signed them (a
	// changed role or approval, a deleted user, an ended session), cached or not.
	Revocations Revocations
}

// Revocations knows which valid-looking tokens auth-service has revoked.
type Revocations interface {
	Revoked(*Claims) bool
}

// Verifier checks access tokens against the JWKS, refreshing it periodically and when a token names an
// unknown key id (rate limited, so forged kids cannot hammer auth-service).
type Verifier struct {
	keys        jwt.Keyfunc
	parser      *jwt.Parser
	cache       *lru.Cache[string, *Claims]
	revocations Revocations
}

// NewVerifier starts the JWKS refresh, which ends with ctx. An unreachable JWKS at start is not an error:
// keys are fetched on the first token that needs them.
func NewVerifier(ctx context.Context, cfg VerifierConfig) (*Verifier, error) {
	keys, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{cfg.JWKSURL}, keyfunc.Override{
		Client:            &http.Client{Timeout: 5 * time.Second},
		RefreshInterval:   5 * time.Minute,
		RefreshUnknownKID: rate.NewLimiter(rate.Every(10*time.Second), 1),
		RateLimitWaitMax:  100 * time.Millisecond,
		RefreshErrorHandlerFunc: func(string) func(context.Context, error) {
			return func(context.Context, error) {} // an unreachable JWKS shows up as 401s and in /readyz
		},
	})
	if err != nil {
		return nil, fmt.Errorf("jwks %s: %w", cfg.JWKSURL, err)
	}
	return newVerifier(keys.Keyfunc, cfg)
}

// NewStaticVerifier verifies against a fixed key function; for tests and tools.
func NewStaticVerifier(keys jwt.Keyfunc, cfg VerifierConfig) (*Verifier, error) {
	return newVerifier(keys, cfg)
}

func newVerifier(keys jwt.Keyfunc, cfg VerifierConfig) (*Verifier, error) {
	size := cfg.CacheSize
	if size == 0 {
		size = 10_000
	}
	cache, err := lru.New[string, *Claims](size)
	if err != nil {
		return nil, err
	}
	return &Verifier{
		keys: keys,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{SigningMethod.Alg()}),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(5*time.Second),
		),
		cache:       cache,
		revocations: cfg.Revocations,
	}, nil
}

// Verify returns the claims of a valid access token, or ErrInvalidToken.
func (v *Verifier) Verify(token string) (*Claims, error) {
	if claims, ok := v.cache.Get(token); ok {
		if v.revoked(claims) {
			return nil, ErrInvalidToken
		}
		if time.Now().Before(claims.ExpiresAt.Time) {
			return claims, nil
		}
		v.cache.Remove(token)
		return nil, ErrInvalidToken
	}
	claims := &Claims{}
	if _, err := v.parser.ParseWithClaims(token, claims, v.keys); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	if claims.Type != TokenTypeAccess || claims.UserID <= 0 || claims.Subject != strconv.FormatInt(claims.UserID, 10) ||
		(claims.Role != RoleAdmin && claims.Role != RoleUser) {
		return nil, ErrInvalidToken
	}
	if v.revoked(claims) {
		return nil, ErrInvalidToken
	}
	// Fiber hands out strings that alias request buffers it reuses; a key that outlives the request
	// must own its bytes, or a later request could rewrite it into another user's token.
	v.cache.Add(strings.Clone(token), claims)
	return claims, nil
}

func (v *Verifier) revoked(claims *Claims) bool {
	return v.revocations != nil && v.revocations.Revoked(claims)
}
