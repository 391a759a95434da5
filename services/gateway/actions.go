package gateway

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
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
func actionTarball(mux *runtime.ServeMux, gate grpc.ClientConnInterface) http.HandlerFunc {
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
		stream, err := gate.NewStream(ctx, &downloadAction, featuregatev1.FeatureGateService_DownloadAction_FullMethodName)
		if err != nil {
			fail(w, r, err)
			return
		}
		var part tarballPart
		err = stream.SendMsg(&featuregatev1.DownloadActionRequest{Repository: repo, Ref: r.PathValue("ref")})
		if err == nil {
			err = stream.CloseSend()
		}
		if err == nil {
			err = stream.RecvMsg(&part)
		}
		if err != nil {
			fail(w, r, err)
			return
		}
		a := part.archive
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
			if err := stream.RecvMsg(&part); err != nil {
				if errors.Is(err, io.EOF) && sent == a.GetSizeBytes() {
					return // all of it
				}
				// Too late for an error status: the runner sees the
				// connection cut short of Content-Length, never a file
				// that merely looks complete.
				panic(http.ErrAbortHandler)
			}
			n, werr := w.Write(part.chunk)
			sent += int64(n)
			if werr != nil {
				return // the runner went away; its context ends the stream
			}
		}
	}
}

// downloadAction is DownloadAction's stream, as the generated client
// opens it.
var downloadAction = grpc.StreamDesc{StreamName: "DownloadAction", ServerStreams: true}

// tarballPart is one DownloadActionResponse as the gateway reads it: the
// archive's description, or a chunk decoded into the same buffer every
// time. The generated message would allocate every chunk anew, and a
// 100 MB tarball would leave the collector 100 MB of garbage to catch up
// with; this keeps the gateway's memory flat. It only receives (pkg/codec
// hands it the wire bytes; protowire reads them).
type tarballPart struct {
	archive *featuregatev1.ActionArchive
	chunk   []byte
}

// Reset keeps the chunk's buffer for the next message.
func (p *tarballPart) Reset() { p.archive, p.chunk = nil, p.chunk[:0] }

// SizeVT and MarshalToSizedBufferVT: a tarballPart is never sent.
func (p *tarballPart) SizeVT() int { return 0 }

func (p *tarballPart) MarshalToSizedBufferVT([]byte) (int, error) {
	return 0, errors.New("gateway: a tarball part is only received")
}

// UnmarshalVT reads DownloadActionResponse's fields: archive (1) and
// chunk (2), both length-delimited; others are skipped.
func (p *tarballPart) UnmarshalVT(b []byte) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if typ != protowire.BytesType || (num != 1 && num != 2) {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if num == 1 {
			p.archive = &featuregatev1.ActionArchive{}
			if err := p.archive.UnmarshalVT(v); err != nil {
				return err
			}
			continue
		}
		p.chunk = append(p.chunk[:0], v...)
	}
	return nil
}
