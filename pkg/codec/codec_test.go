package codec_test

import (
	"strings"
	"testing"
	"time"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	"github.com/ghconnect/ghconnect/pkg/codec"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestRegisteredAsProto(t *testing.T) {
	if _, ok := encoding.GetCodecV2("proto").(codec.Codec); !ok {
		t.Fatalf("gRPC's proto codec is %T", encoding.GetCodecV2("proto"))
	}
}

func response(repos int) *brokerv1.IssueTokenResponse {
	r := &brokerv1.IssueTokenResponse{Token: "ghs_example", ExpireTime: timestamppb.New(time.Unix(1767225600, 0)),
		Permissions: map[string]string{"contents": "read", "issues": "write", "pull_requests": "read"}, RepositorySelection: "selected", Exclusive: true}
	for i := range repos {
		r.Repositories = append(r.Repositories, &brokerv1.Repository{Id: int64(i + 1), FullName: "octo-org/repo-" + strings.Repeat("x", i%7)})
	}
	return r
}

// The generated marshalling is protobuf: what it writes the reflection
// codec reads, and back, for small and pooled (large) messages alike.
func TestSameWireAsProto(t *testing.T) {
	c := encoding.GetCodecV2("proto")
	for _, repos := range []int{0, 1, 2000} {
		in := response(repos)
		data, err := c.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		var viaProto brokerv1.IssueTokenResponse
		if err := proto.Unmarshal(data.Materialize(), &viaProto); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(in, &viaProto) {
			t.Errorf("%d repositories: proto read %v", repos, &viaProto)
		}
		data.Free()
		raw, _ := proto.Marshal(in)
		var out brokerv1.IssueTokenResponse
		if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(raw)}, &out); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(in, &out) {
			t.Errorf("%d repositories: the codec read %v", repos, &out)
		}
	}
}

// Unmarshal replaces a message's contents, as proto.Unmarshal does.
func TestUnmarshalReplaces(t *testing.T) {
	c := encoding.GetCodecV2("proto")
	raw, _ := proto.Marshal(&brokerv1.IssueTokenRequest{ConnectionId: "b", MinLifetime: durationpb.New(time.Minute)})
	out := &brokerv1.IssueTokenRequest{ConnectionId: "a", Repositories: []string{"old"}, Permissions: map[string]string{"issues": "write"}}
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(raw)}, out); err != nil {
		t.Fatal(err)
	}
	if out.ConnectionId != "b" || len(out.Repositories) != 0 || len(out.Permissions) != 0 || out.MinLifetime.AsDuration() != time.Minute {
		t.Errorf("after Unmarshal: %v", out)
	}
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer([]byte{0xff})}, out); err == nil {
		t.Error("garbage was accepted")
	}
}

// Other messages go to the default codec.
func TestOtherMessages(t *testing.T) {
	c := encoding.GetCodecV2("proto")
	in, _ := structpb.NewStruct(map[string]any{"k": "v"})
	data, err := c.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out structpb.Struct
	if err := c.Unmarshal(data, &out); err != nil || !proto.Equal(in, &out) {
		t.Errorf("struct: %v, %v", &out, err)
	}
	if _, err := c.Marshal("not a message"); err == nil {
		t.Error("a string was marshalled")
	}
}

// A small message costs two allocations: its bytes, and the slice gRPC is
// handed with its buffer.
func TestSmallMessageAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	c := encoding.GetCodecV2("proto")
	in := response(1)
	size := proto.Size(in)
	if n := testing.AllocsPerRun(100, func() {
		data, err := c.Marshal(in)
		if err != nil || data.Len() != size {
			t.Fatalf("marshal: %v", err)
		}
		data.Free()
	}); n > 2 {
		t.Errorf("%v allocations a message", n)
	}
}
