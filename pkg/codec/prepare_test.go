package codec_test

import (
	"fmt"
	"strings"
	"testing"

	brokerv1 "github.com/ghconnect/ghconnect/gen/ghconnect/broker/v1"
	featuregatev1 "github.com/ghconnect/ghconnect/gen/ghconnect/featuregate/v1"
	"github.com/ghconnect/ghconnect/pkg/codec"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

func checkRequest(users int) *featuregatev1.CheckRequest {
	r := &featuregatev1.CheckRequest{ConnectionId: "c-1", Features: []featuregatev1.Feature{1, 2, 3}, ReasonsOnly: true}
	for i := range users {
		r.Users = append(r.Users, fmt.Sprintf("user-%d", i))
	}
	return r
}

// presizeCases are messages with each kind of repeated field prepare
// fills (strings, messages, packed enums) and others it leaves (maps,
// numbers the decoder sizes), with 0, 1 and many elements.
func presizeCases() []proto.Message {
	reasons := func(n int) *featuregatev1.CheckResponse {
		r := &featuregatev1.CheckResponse{Missing: []*featuregatev1.MissingPermissions{{Feature: 1, Permissions: map[string]string{"contents": "read"}}, {Feature: 2}}}
		for i := range n {
			r.Reasons = append(r.Reasons, featuregatev1.Reason(i%5))
		}
		return r
	}
	counts := &featuregatev1.ReportContributionsRequest{ConnectionId: "c-1"}
	for i := range 1000 {
		counts.Counts = append(counts.Counts, &featuregatev1.ContributionCount{User: fmt.Sprintf("u%d", i), Count: int64(i)})
	}
	return []proto.Message{
		checkRequest(0), checkRequest(1), checkRequest(50), checkRequest(1000),
		reasons(0), reasons(1), reasons(150), reasons(300),
		counts, response(0), response(1), response(2000),
		&brokerv1.IssueTokenRequest{ConnectionId: "c", Repositories: []string{"a", "b", "c"}, RepositoryIds: []int64{1, 2, 300000}, Permissions: map[string]string{"issues": "write"}},
	}
}

// The codec decodes what proto.Unmarshal decodes, presized or not, and a
// presized field's slice is about as long as it holds (the allocator's
// size classes round it up a little; growing by appending doubles it).
func TestPresizeDecodesTheSame(t *testing.T) {
	c := encoding.GetCodecV2("proto")
	for _, in := range presizeCases() {
		raw, err := proto.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		out := in.ProtoReflect().New().Interface()
		if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(raw)}, out); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(in, out) {
			t.Errorf("%T: the codec read %v", in, out)
		}
		switch m := out.(type) {
		case *featuregatev1.CheckRequest:
			if len(m.Users) > 1 && !snug(len(m.Users), cap(m.Users)) {
				t.Errorf("%d users in a slice of %d", len(m.Users), cap(m.Users))
			}
		case *featuregatev1.CheckResponse:
			if len(m.Reasons) > 1 && !snug(len(m.Reasons), cap(m.Reasons)) {
				t.Errorf("%d reasons in a slice of %d", len(m.Reasons), cap(m.Reasons))
			}
		case *featuregatev1.ReportContributionsRequest:
			if !snug(len(m.Counts), cap(m.Counts)) {
				t.Errorf("%d counts in a slice of %d", len(m.Counts), cap(m.Counts))
			}
		}
	}
}

// snug: a slice of capacity c made for n elements, not grown to them.
func snug(n, c int) bool { return c >= n && float64(c) <= float64(n)*1.15+4 }

// An enum list sent unpacked (as proto2 writers and old ones may) is
// counted by its records.
func TestPresizeUnpackedEnums(t *testing.T) {
	var raw []byte
	for i := range 20 {
		raw = protowire.AppendTag(raw, 2, protowire.VarintType)
		raw = protowire.AppendVarint(raw, uint64(i%4))
	}
	var out featuregatev1.CheckResponse
	if err := encoding.GetCodecV2("proto").Unmarshal(mem.BufferSlice{mem.SliceBuffer(raw)}, &out); err != nil {
		t.Fatal(err)
	}
	var want featuregatev1.CheckResponse
	if err := proto.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&want, &out) || !snug(20, cap(out.Reasons)) {
		t.Errorf("read %v (a slice of %d), want %v", out.Reasons, cap(out.Reasons), want.Reasons)
	}
}

// Damaged input: every truncation and a changed byte at every position of
// each case is refused where the generated decoder alone refuses it or
// proto.Unmarshal finds a string that is not UTF-8, and read as the
// generated decoder reads it otherwise; nothing panics.
func TestPresizeDamagedInput(t *testing.T) {
	c := encoding.GetCodecV2("proto")
	for _, in := range presizeCases() {
		raw, _ := proto.Marshal(in)
		if len(raw) > 600 {
			raw = raw[:600]
		}
		var inputs [][]byte
		for i := range raw {
			inputs = append(inputs, raw[:i])
			for _, b := range []byte{0x00, 0x7f, 0x80, 0xff, raw[i] ^ 0x08} {
				d := append([]byte(nil), raw...)
				d[i] = b
				inputs = append(inputs, d)
			}
		}
		for _, d := range inputs {
			want := in.ProtoReflect().New().Interface()
			werr := want.(codec.Message).UnmarshalVT(d)
			if perr := proto.Unmarshal(d, in.ProtoReflect().New().Interface()); werr == nil && perr != nil && strings.Contains(perr.Error(), "invalid UTF-8") {
				werr = perr
			}
			got := in.ProtoReflect().New().Interface()
			gerr := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(d)}, got)
			if (werr == nil) != (gerr == nil) {
				t.Errorf("%T %x: codec %v, generated decoder %v", in, d, gerr, werr)
				continue
			}
			if werr == nil && !proto.Equal(want, got) {
				t.Errorf("%T %x: codec read %v, generated decoder %v", in, d, got, want)
			}
		}
	}
}

// A check of 50 users decodes with five allocations fewer than the
// generated decoder alone makes: one slice of users where it grew seven,
// one of features where it grew two.
func TestPresizeAllocations(t *testing.T) {
	c := encoding.GetCodecV2("proto")
	raw, _ := proto.Marshal(checkRequest(50))
	var out featuregatev1.CheckRequest
	withCodec := testing.AllocsPerRun(200, func() {
		if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(raw)}, &out); err != nil {
			t.Fatal(err)
		}
	})
	alone := testing.AllocsPerRun(200, func() {
		out.Reset()
		if err := out.UnmarshalVT(raw); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%.0f allocations through the codec, %.0f by the generated decoder alone", withCodec, alone)
	if withCodec > alone-5 {
		t.Errorf("%.0f allocations to decode 50 users through the codec, want at most %.0f", withCodec, alone-5)
	}
}

// BenchmarkUnmarshal: the codec's decoding of a cache hit's request, a
// token's reply and a check of 50 users (with presize; the generated
// decoder alone is the -alone run).
func BenchmarkUnmarshal(b *testing.B) {
	c := encoding.GetCodecV2("proto")
	for _, m := range []proto.Message{
		&brokerv1.IssueTokenRequest{ConnectionId: "5f3c0a2e-0000-4000-8000-000000000001", Repositories: []string{"hello-world"}, Permissions: map[string]string{"metadata": "read"}},
		response(1), checkRequest(50),
	} {
		raw, _ := proto.Marshal(m)
		out := m.ProtoReflect().New().Interface()
		b.Run(fmt.Sprintf("%T", m), func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(raw)}, out); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("%T-alone", m), func(b *testing.B) {
			b.ReportAllocs()
			v := out.(codec.Message)
			for range b.N {
				v.Reset()
				if err := v.UnmarshalVT(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Proto3 strings hold UTF-8: the codec refuses what proto.Unmarshal
// refuses (and gRPC's own codec did), at any depth, in lists and maps.
func TestInvalidUTF8IsRefused(t *testing.T) {
	c := encoding.GetCodecV2("proto")
	bad := string([]byte{0xff, 'x'})
	for _, m := range []proto.Message{
		&brokerv1.IssueTokenRequest{ConnectionId: bad},
		&brokerv1.IssueTokenRequest{Repositories: []string{"ok", bad}},
		&brokerv1.IssueTokenRequest{Permissions: map[string]string{bad: "read"}},
		&brokerv1.IssueTokenRequest{Permissions: map[string]string{"contents": bad}},
		&featuregatev1.ReportContributionsRequest{Counts: []*featuregatev1.ContributionCount{{User: "a"}, {User: bad}}},
		&featuregatev1.CheckResponse{Missing: []*featuregatev1.MissingPermissions{{Permissions: map[string]string{"issues": bad}}}},
	} {
		if _, err := proto.Marshal(m); err == nil {
			t.Fatalf("%v marshalled", m)
		}
		// Marshal refuses too; write it without the check.
		raw := appendUnchecked(m)
		if err := proto.Unmarshal(raw, m.ProtoReflect().New().Interface()); err == nil {
			t.Fatalf("proto read %x", raw)
		}
		if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(raw)}, m.ProtoReflect().New().Interface()); err == nil {
			t.Errorf("%T %x: the codec read invalid UTF-8", m, raw)
		}
	}
}

// appendUnchecked is m encoded by the generated marshalling, which does
// not check UTF-8.
func appendUnchecked(m proto.Message) []byte {
	v := m.(interface{ MarshalVT() ([]byte, error) })
	raw, err := v.MarshalVT()
	if err != nil {
		panic(err)
	}
	return raw
}
