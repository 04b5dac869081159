package s3store

import (
	"cmp"
	"context"
	"io"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cloudftpd/cloudftpd/internal/storage"
)

// dirIter streams a directory one ListObjectsV2 page at a time: it holds
// at most one page of entries and asks for the next one only when that
// page has been read.
type dirIter struct {
	t      *tree
	ctx    context.Context
	prefix string // the directory's key prefix: "home/dir/"

	page  []dirEntry // entries of the current page not yet returned
	token *string    // continuation token of the next page
	more  bool       // another page may follow
	last  string     // key of the last entry returned
}

// dirEntry is an entry with the key it was listed under, for ordering.
type dirEntry struct {
	key  string
	info storage.FileInfo
}

// Next returns the next entry, fetching a page when the current one is
// used up.
func (it *dirIter) Next() (storage.FileInfo, error) {
	for {
		if len(it.page) > 0 {
			e := it.page[0]
			it.page = it.page[1:]
			if e.key == it.last {
				// Some servers list a common prefix again at the top of
				// the page after the one it ended.
				continue
			}
			it.last = e.key
			return e.info, nil
		}
		if !it.more {
			return storage.FileInfo{}, io.EOF
		}
		if _, err := it.fetch(); err != nil {
			return storage.FileInfo{}, err
		}
	}
}

// fetch reads the next page into it.page and reports how many keys and
// common prefixes it held, the directory's own marker included.
func (it *dirIter) fetch() (int, error) {
	if err := it.ctx.Err(); err != nil {
		return 0, &opError{op: "list", key: it.prefix, err: err}
	}
	t := it.t
	out, err := do(it.ctx, t.b, "ListObjectsV2", t.b.client.ListObjectsV2, &s3.ListObjectsV2Input{
		Bucket: &t.b.bucket, Prefix: &it.prefix, Delimiter: aws.String("/"),
		MaxKeys: aws.Int32(t.b.pageSize), ContinuationToken: it.token,
	})
	if err != nil {
		return 0, t.mapErr("list", it.prefix, err)
	}
	it.token = out.NextContinuationToken
	it.more = aws.ToBool(out.IsTruncated) && it.token != nil
	it.page = it.page[:0]
	for _, o := range out.Contents {
		key := aws.ToString(o.Key)
		name, ok := it.child(key)
		if !ok {
			continue
		}
		info := storage.FileInfo{
			Name:    name,
			Size:    aws.ToInt64(o.Size),
			ModTime: aws.ToTime(o.LastModified),
			Mode:    fileMode,
			ID:      strings.Trim(aws.ToString(o.ETag), `"`),
		}
		if dir, isMarker := strings.CutSuffix(name, "/"); isMarker {
			info = storage.FileInfo{Name: dir, ModTime: info.ModTime, Mode: dirMode}
		}
		if strings.Contains(info.Name, "/") || info.Name == "" {
			continue // deeper: a server that ignored the delimiter
		}
		it.page = append(it.page, dirEntry{key: key, info: info})
	}
	for _, p := range out.CommonPrefixes {
		key := aws.ToString(p.Prefix)
		name, ok := it.child(key)
		name = strings.TrimSuffix(name, "/")
		if !ok || name == "" || strings.Contains(name, "/") {
			continue
		}
		it.page = append(it.page, dirEntry{key: key, info: storage.FileInfo{Name: name, Mode: dirMode}})
	}
	slices.SortFunc(it.page, func(a, b dirEntry) int { return cmp.Compare(a.key, b.key) })
	return len(out.Contents) + len(out.CommonPrefixes), nil
}

// child returns the part of key below the directory, refusing keys that
// are not below it (which a correct server never lists) and the
// directory's own marker.
func (it *dirIter) child(key string) (string, bool) {
	name, ok := strings.CutPrefix(key, it.prefix)
	return name, ok && name != ""
}

// Close drops the page; there is nothing else to release.
func (it *dirIter) Close() error {
	it.page, it.more = nil, false
	return nil
}
