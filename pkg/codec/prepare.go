package codec

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The generated decoder appends each element of a repeated field of
// strings, bytes, messages or enums to its slice, which grows by doubling:
// a request of 50 users makes seven slices to keep one, a report of
// 10,000 counts fifteen. (It sizes other packed numbers itself.) prepare
// counts those fields' elements in the encoded message first and gives
// each repeated field of two or more its slice at its final size; the
// decoder then appends into it. A count is bounded by the bytes that hold
// the elements, so no input makes a slice larger than decoding it would.

// sized is a repeated field prepare sizes: its number and Go struct field.
type sized struct {
	num    protowire.Number
	index  int
	packed bool // an enum list, packed: count the varints of one record
}

// plans holds each message type's []sized, made once.
var plans sync.Map // reflect.Type → []sized

func planOf(t reflect.Type, md protoreflect.MessageDescriptor) []sized {
	if p, ok := plans.Load(t); ok {
		return p.([]sized)
	}
	var plan []sized
	st := t.Elem()
	for i := range st.NumField() {
		f := st.Field(i)
		tag := f.Tag.Get("protobuf")
		// Maps, oneofs and singular fields are no slices; a singular bytes
		// field is, and is no list below.
		if tag == "" || f.Type.Kind() != reflect.Slice {
			continue
		}
		parts := strings.SplitN(tag, ",", 3)
		if len(parts) < 3 {
			continue
		}
		n, err := strconv.ParseInt(parts[1], 10, 32)
		if err != nil {
			continue
		}
		fd := md.Fields().ByNumber(protowire.Number(n))
		if fd == nil || !fd.IsList() {
			continue
		}
		switch fd.Kind() {
		case protoreflect.StringKind, protoreflect.BytesKind, protoreflect.MessageKind:
			plan = append(plan, sized{num: fd.Number(), index: i})
		case protoreflect.EnumKind:
			plan = append(plan, sized{num: fd.Number(), index: i, packed: fd.IsPacked()})
		}
	}
	plans.Store(t, plan)
	return plan
}

// errInvalidUTF8 is proto.Unmarshal's answer to a string that is not
// UTF-8, which proto3 requires and the generated decoder does not check.
var errInvalidUTF8 = errors.New("proto: string field contains invalid UTF-8")

// prepare reads data, m's encoding, before the generated decoder does:
// it refuses strings that are not UTF-8 at any depth, and gives m's
// repeated fields (see above) slices as long as data holds; m has just
// been Reset. Data it cannot parse is left to the decoder, which says
// what is wrong with it.
func prepare(m protoreflect.ProtoMessage, data []byte) error {
	md := m.ProtoReflect().Descriptor()
	plan := planOf(reflect.TypeOf(m), md)
	var buf [8]int
	counts := buf[:]
	if len(plan) > len(buf) {
		counts = make([]int, len(plan))
	}
	counts = counts[:len(plan)]
	if err := walk(md, data, plan, counts); err != nil {
		return err
	}
	v := reflect.ValueOf(m).Elem()
	for i, f := range plan {
		if counts[i] > 1 {
			v.Field(f.index).Grow(counts[i])
		}
	}
	return nil
}

// walk checks the strings of one message's encoding against md, counting
// the elements of plan's fields in counts (the top level only). It goes
// as deep as the message's fields do, no deeper than the generated
// decoder (no message of ours contains itself).
func walk(md protoreflect.MessageDescriptor, data []byte, plan []sized, counts []int) error {
	fields := md.Fields()
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return nil
		}
		data = data[n:]
		at := -1
		for i := range plan {
			if plan[i].num == num {
				at = i
				break
			}
		}
		if typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, data)
			if n < 0 {
				return nil
			}
			data = data[n:]
			if at >= 0 {
				counts[at]++ // an enum list not packed
			}
			continue
		}
		v, n := protowire.ConsumeBytes(data)
		if n < 0 {
			return nil
		}
		data = data[n:]
		if at >= 0 {
			if plan[at].packed {
				for _, b := range v {
					if b < 0x80 {
						counts[at]++
					}
				}
			} else {
				counts[at]++
			}
		}
		fd := fields.ByNumber(num)
		if fd == nil {
			continue
		}
		switch fd.Kind() {
		case protoreflect.StringKind:
			if fd.ParentFile().Syntax() == protoreflect.Proto3 && !utf8.Valid(v) {
				return errInvalidUTF8
			}
		case protoreflect.MessageKind:
			// A map's entries are messages of their key and value.
			if err := walk(fd.Message(), v, nil, nil); err != nil {
				return err
			}
		}
	}
	return nil
}
