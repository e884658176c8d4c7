package show

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// maxDepth bounds the nesting of a decoded value, so that a hostile body
// of nested arrays cannot exhaust the stack.
const maxDepth = 64

// Object is a msgpack map decoded for JSON: its members in the order the
// map holds them. It marshals to a JSON object with the keys in that order.
type Object []Member

// Member is one key and value of an Object.
type Member struct {
	Key   string
	Value any
}

// Get returns the value of the first member named key.
func (o Object) Get(key string) (any, bool) {
	for _, m := range o {
		if m.Key == key {
			return m.Value, true
		}
	}
	return nil, false
}

// MarshalJSON writes o as a JSON object, keeping the order of its members.
func (o Object) MarshalJSON() ([]byte, error) {
	return appendJSON(nil, o)
}

// appendJSON appends v as JSON to b. It writes the values Decode returns
// itself, so that nested Objects are not each checked again by
// encoding/json, and hands anything else to encoding/json.
func appendJSON(b []byte, v any) ([]byte, error) {
	var err error
	switch v := v.(type) {
	case Object:
		b = append(b, '{')
		for i, m := range v {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendJSON(b, m.Key); err != nil {
				return nil, err
			}
			b = append(b, ':')
			if b, err = appendJSON(b, m.Value); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	case []any:
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendJSON(b, e); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	case int64:
		return strconv.AppendInt(b, v, 10), nil
	case uint64:
		return strconv.AppendUint(b, v, 10), nil
	case nil:
		return append(b, "null"...), nil
	}
	j, err := marshal(v)
	if err != nil {
		return nil, err
	}
	return append(b, j...), nil
}

// marshal is json.Marshal without HTML escaping, so paths read as they are.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// Decode decodes one msgpack value from body into a value that
// encoding/json can write: a map becomes an Object (non-string keys are
// written as text), an array []any, bin []byte (base64 in JSON), integers
// int64 or uint64, floats float64 (NaN and infinities as strings), an
// extension type an Object with its type number and data. Bytes after the
// value are ignored, as every ckpt reader ignores them.
func Decode(body []byte) (any, error) {
	r := bytes.NewReader(body)
	d := &decoder{d: msgpack.NewDecoder(r), r: r}
	v, err := d.value(0)
	if err != nil {
		return nil, fmt.Errorf("decode msgpack at body byte %d: %w", len(body)-r.Len(), err)
	}
	return v, nil
}

// decoder walks msgpack values. r is the decoder's input, whose Len tells
// how many bytes are left, so that no claimed length makes it allocate
// more than the body holds.
type decoder struct {
	d *msgpack.Decoder
	r *bytes.Reader
}

var errDepth = errors.New("values nested too deep")

func (d *decoder) value(depth int) (any, error) {
	if depth > maxDepth {
		return nil, errDepth
	}
	c, err := d.d.PeekCode()
	if err != nil {
		return nil, err
	}
	switch {
	case msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32:
		return d.object(depth)
	case msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32:
		return d.array(depth)
	case msgpcode.IsString(c):
		return d.d.DecodeString()
	case msgpcode.IsBin(c):
		return d.d.DecodeBytes()
	case msgpcode.IsExt(c):
		return d.ext()
	case c == msgpcode.Float || c == msgpcode.Double:
		return float(d.d.DecodeFloat64())
	case c == msgpcode.Uint64:
		return d.d.DecodeUint64()
	case c == msgpcode.Nil:
		return nil, d.d.DecodeNil()
	case c == msgpcode.True || c == msgpcode.False:
		return d.d.DecodeBool()
	}
	return d.d.DecodeInt64() // every other code is an integer, or an error
}

// count checks a claimed number of elements against the bytes left: each
// takes at least one.
func (d *decoder) count(n int) error {
	if n > d.r.Len() {
		return fmt.Errorf("%d elements claimed, %d bytes left", n, d.r.Len())
	}
	return nil
}

func (d *decoder) object(depth int) (any, error) {
	n, err := d.d.DecodeMapLen()
	if err != nil {
		return nil, err
	}
	if err := d.count(n); err != nil {
		return nil, err
	}
	o := make(Object, 0, n)
	for range n {
		k, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		o = append(o, Member{Key: keyText(k), Value: v})
	}
	return o, nil
}

// keyText writes a map key that is not a string as text.
func keyText(k any) string {
	switch k := k.(type) {
	case string:
		return k
	case int64:
		return strconv.FormatInt(k, 10)
	case uint64:
		return strconv.FormatUint(k, 10)
	}
	b, err := marshal(k)
	if err != nil {
		return fmt.Sprint(k)
	}
	return string(b)
}

func (d *decoder) array(depth int) (any, error) {
	n, err := d.d.DecodeArrayLen()
	if err != nil {
		return nil, err
	}
	if err := d.count(n); err != nil {
		return nil, err
	}
	a := make([]any, 0, n)
	for range n {
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
	}
	return a, nil
}

// ext decodes an extension value, which no ckpt record uses, as its type
// number and its data.
func (d *decoder) ext() (any, error) {
	id, n, err := d.d.DecodeExtHeader()
	if err != nil {
		return nil, err
	}
	if n > d.r.Len() {
		return nil, fmt.Errorf("extension of %d bytes, %d left", n, d.r.Len())
	}
	data := make([]byte, n)
	if err := d.d.ReadFull(data); err != nil {
		return nil, err
	}
	return Object{{"ext", int64(id)}, {"data", data}}, nil
}

// float returns f, or a string for the values JSON has no number for.
func float(f float64, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return strconv.FormatFloat(f, 'g', -1, 64), nil
	}
	return f, nil
}
