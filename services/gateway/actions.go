package gateway

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// actionsRoute is where runners on the server fetch GitHub.com actions:
// the tarball of owner/repo at ref, as GitHub's own tarball route names
// it. It is not an admin route: a runner calls with its own bearer token
// (the principal the feature gate gives the actions-runner role), never
// with a session.
const actionsRoute = "GET /v1/actions/{owner}/{repo}/tarball/{ref...}"

// actionTarball streams DownloadAction's bytes as the response body. It
// is a plain handler, not a grpc-gateway route: grpc-gateway writes a
// delimiter after every message of a stream, which would corrupt the
// archive.
func actionTarball(mux *runtime.ServeMux, gate featuregatev1.FeatureGateServiceClient) http.HandlerFunc {
	fail := func(w http.ResponseWriter, r *http.Request, err error) {
		_, out := runtime.MarshalerForRequest(mux, r)
		errorHandler(r.Context(), mux, out, w, r, err)
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if !hasBearer(r) {
			fail(w, r, status.Error(codes.Unauthenticated, "missing bearer token: runners call with their own"))
			return
		}
		md := metadata.Pairs("authorization", r.Header.Get("Authorization"))
		if id := r.Header.Get("X-Request-Id"); id != "" {
			md.Set("x-request-id", id)
		}
		ctx := metadata.NewOutgoingContext(r.Context(), md)
		repo := r.PathValue("owner") + "/" + r.PathValue("repo")
		stream, err := gate.DownloadAction(ctx, &featuregatev1.DownloadActionRequest{Repository: repo, Ref: r.PathValue("ref")})
		if err != nil {
			fail(w, r, err)
			return
		}
		first, err := stream.Recv()
		if err != nil {
			fail(w, r, err)
			return
		}
		a := first.GetArchive()
		if a == nil {
			fail(w, r, status.Error(codes.Internal, "the feature gate sent no archive description"))
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/x-gzip")
		h.Set("Content-Length", strconv.FormatInt(a.GetSizeBytes(), 10))
		h.Set("ETag", strconv.Quote(a.GetSha()))
		short := a.GetSha()
		if len(short) > 7 {
			short = short[:7]
		}
		h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%s-%s-%s.tar.gz", r.PathValue("owner"), r.PathValue("repo"), short))
		h.Set("X-Ghconnect-Commit", a.GetSha())
		cache := "miss"
		if a.GetFromCache() {
			cache = "hit"
		}
		h.Set("X-Ghconnect-Cache", cache)
		w.WriteHeader(http.StatusOK)
		var sent int64
		for {
			m, err := stream.Recv()
			if err != nil {
				if errors.Is(err, io.EOF) && sent == a.GetSizeBytes() {
					return // io.EOF: all of it
				}
				// Too late for an error status: the runner sees the
				// connection cut short of Content-Length, never a file
				// that merely looks complete.
				panic(http.ErrAbortHandler)
			}
			n, werr := w.Write(m.GetChunk())
			sent += int64(n)
			if werr != nil {
				return // the runner went away; its context ends the stream
			}
		}
	}
}
