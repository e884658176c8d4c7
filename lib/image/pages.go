package image

import (
	"bytes"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// DecodePages decodes the body of a pages record into p without copying
// its page data: p.Data points into body, and is valid as long as body
// is. Keys it does not know are skipped, as msgpack.Unmarshal would.
func DecodePages(body []byte, p *Pages) error {
	r := bytes.NewReader(body)
	dec := msgpack.NewDecoder(r)
	n, err := dec.DecodeMapLen()
	if err != nil {
		return fmt.Errorf("decode pages record: %w", err)
	}
	*p = Pages{}
	for range n {
		key, err := dec.DecodeString()
		if err != nil {
			return fmt.Errorf("decode pages record: key: %w", err)
		}
		switch key {
		case "pid":
			p.PID, err = dec.DecodeInt()
		case "addr":
			p.Addr, err = dec.DecodeUint64()
		case "data":
			p.Data, err = dataView(dec, r, body)
		default:
			err = dec.Skip()
		}
		if err != nil {
			return fmt.Errorf("decode pages record: %s: %w", key, err)
		}
	}
	if r.Len() != 0 {
		return fmt.Errorf("decode pages record: %d bytes after its end", r.Len())
	}
	return nil
}

// dataView reads a bin header from dec and returns the bytes it announces
// as a slice of body, moving r past them.
func dataView(dec *msgpack.Decoder, r *bytes.Reader, body []byte) ([]byte, error) {
	n, err := dec.DecodeBytesLen()
	if err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, nil // nil
	}
	if n > r.Len() {
		return nil, fmt.Errorf("%d bytes announced, %d left", n, r.Len())
	}
	at := len(body) - r.Len()
	if _, err := r.Seek(int64(n), 1); err != nil {
		return nil, err
	}
	return body[at : at+n : at+n], nil
}
