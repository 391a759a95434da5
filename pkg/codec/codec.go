// Package codec makes gRPC marshal ghconnect's own messages with the code
// protoc-gen-go-vtproto generates beside them (gen/…/*_vtproto.pb.go):
// no reflection, maps included, which the broker's cache-hit path feels.
// Every other message (health, reflection, well-known types on their own)
// goes to gRPC's default proto codec. The wire format is protobuf either
// way, so peers need not agree on the codec.
//
// Before decoding, the codec reads the message once (prepare.go): it
// refuses strings that are not UTF-8, as proto.Unmarshal does and the
// generated decoder does not, and gives repeated fields of strings, bytes,
// messages and enums their slices at their final size, which the
// generated decoder would grow by appending.
//
// Importing the package registers the codec, replacing "proto": pkg/server
// and pkg/dial do, so every ghconnect server and client uses it.
package codec

import (
	"google.golang.org/grpc/encoding"
	gproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Message is what the generated marshalling gives a message.
type Message interface {
	Reset()
	SizeVT() int
	MarshalToSizedBufferVT([]byte) (int, error)
	UnmarshalVT([]byte) error
}

// Codec is gRPC's "proto" codec, fast for Messages.
type Codec struct{ fallback encoding.CodecV2 }

// New returns the codec, falling back to fallback for other messages.
func New(fallback encoding.CodecV2) Codec { return Codec{fallback: fallback} }

func init() { encoding.RegisterCodecV2(New(encoding.GetCodecV2(gproto.Name))) }

// Name is the codec's name on the wire ("proto").
func (Codec) Name() string { return gproto.Name }

// Marshal encodes v, into a pooled buffer when it is large.
func (c Codec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(Message)
	if !ok {
		return c.fallback.Marshal(v)
	}
	size := m.SizeVT()
	if mem.IsBelowBufferPoolingThreshold(size) {
		s := &small{buf: make([]byte, size)}
		if _, err := m.MarshalToSizedBufferVT(s.buf); err != nil {
			return nil, err
		}
		s.list[0] = &s.buf
		return s.list[:], nil
	}
	pool := mem.DefaultBufferPool()
	buf := pool.Get(size)
	if _, err := m.MarshalToSizedBufferVT(*buf); err != nil {
		pool.Put(buf)
		return nil, err
	}
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

// small is a message below gRPC's pooling threshold: the slice gRPC is
// handed and its one buffer, in one allocation (a pointer goes into the
// interface without one of its own).
type small struct {
	list [1]mem.Buffer
	buf  mem.SliceBuffer
}

// Unmarshal decodes data into v, checked and its repeated fields presized
// (prepare). The generated code copies what it keeps, so the buffer goes
// back to the pool at once.
func (c Codec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(Message)
	if !ok {
		return c.fallback.Unmarshal(data, v)
	}
	// The generated code merges into what is there; proto.Unmarshal
	// replaces it.
	m.Reset()
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	if pm, ok := v.(protoreflect.ProtoMessage); ok {
		if err := prepare(pm, buf.ReadOnlyData()); err != nil {
			return err
		}
	}
	return m.UnmarshalVT(buf.ReadOnlyData())
}
