package show

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"slices"

	"github.com/ckpt/ckpt/lib/image"
	"github.com/vmihailenco/msgpack/v5"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Line is one record as WriteJSON writes it.
type Line struct {
	Record int    `json:"record"` // its number; the header is record 0
	Offset int64  `json:"offset"` // byte offset of its frame in the record stream
	Kind   string `json:"kind"`
	Body   any    `json:"body"` // the body, decoded generically (see Decode)
}

// Data is what WriteJSON writes in place of the data of a pages or
// ghost-data record: its length and its CRC-32C (Castagnoli), in hex.
type Data struct {
	Bytes  int    `json:"bytes"`
	CRC32C string `json:"crc32c"`
}

// WriteJSON writes every record of in, header and end included, as one
// line of JSON (a Line) to w, as it reads them. When the input turns out
// to be truncated or corrupt, the lines of the records before the problem
// are written, and the error is returned.
//
// The header and the end record are written as this tree's image.Header
// and image.End read them: keys they do not know are not shown. Every
// other body is decoded generically, so records of kinds this tree does
// not know are shown too.
func WriteJSON(ctx context.Context, w io.Writer, in *Input) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	h, err := in.Header()
	if err != nil {
		return err
	}
	hb, err := headerObject(h)
	if err != nil {
		return err
	}
	if err := enc.Encode(Line{Kind: image.KindHeader, Body: hb}); err != nil {
		return err
	}
	for {
		if err := ctx.Err(); err != nil {
			in.Close()
			return err
		}
		rec, err := in.Next()
		if err == io.EOF {
			n, off := in.Where()
			return enc.Encode(Line{n, off, image.KindEnd, endObject(in.End())})
		}
		if err != nil {
			return err
		}
		body, err := Decode(rec.Body)
		if err != nil {
			return in.Errorf(fmt.Errorf("%s record: %w", rec.Kind, err))
		}
		if rec.Kind == image.KindPages || rec.Kind == image.KindGhostData {
			body = replaceData(body)
		}
		n, off := in.Where()
		if err := enc.Encode(Line{n, off, rec.Kind, body}); err != nil {
			return err
		}
	}
}

// headerObject returns the header as an Object, fields in their order.
func headerObject(h *image.Header) (any, error) {
	b, err := msgpack.Marshal(h)
	if err != nil {
		return nil, err
	}
	return Decode(b)
}

// endObject returns the end record as an Object, its kinds sorted.
func endObject(e *image.End) Object {
	kinds := Object{}
	for _, k := range slices.Sorted(maps.Keys(e.Kinds)) {
		kinds = append(kinds, Member{k, int64(e.Kinds[k])})
	}
	return Object{{"records", int64(e.Records)}, {"kinds", kinds}}
}

// replaceData replaces the "data" bytes of a body with their length and
// checksum.
func replaceData(body any) any {
	o, ok := body.(Object)
	if !ok {
		return body
	}
	for i, m := range o {
		if b, ok := m.Value.([]byte); ok && m.Key == "data" {
			o[i].Value = Data{len(b), fmt.Sprintf("%08x", crc32.Checksum(b, castagnoli))}
		}
	}
	return o
}
