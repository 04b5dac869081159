package delivery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/cloudftpd/cloudftpd/internal/events"
)

// sqsBatch is the most messages one SendMessageBatch may carry.
const sqsBatch = 10

// SQSSink sends each event's JSON as one message to an Amazon SQS queue,
// ten at a time with SendMessageBatch, in order. Every message carries the
// event's type and id as message attributes ("type", "id"), so that
// subscribers can filter without parsing the body. For a FIFO queue (its
// URL ends in ".fifo") the event id is the deduplication id and the user
// (or "-") the message group, so events of one user stay in order and a
// message resent after a lost answer is dropped by SQS itself; a standard
// queue may deliver a resent event twice, with the same id.
type SQSSink struct {
	queueURL string
	region   string
	endpoint string
	fifo     bool
	timeout  time.Duration // one SendMessageBatch

	mu     sync.Mutex
	client *sqs.Client // built on first use, with the first Deliver's ctx
	// newClient builds the client (tests replace it).
	newClient func(ctx context.Context) (*sqs.Client, error)
}

// NewSQS returns a sink for queueURL. region "" takes it from the queue
// URL's host (sqs.REGION.amazonaws.com), else from the AWS configuration;
// endpoint "" is the region's SQS endpoint (set it for a VPC endpoint or
// a stand-in). Credentials come from the standard AWS chain (environment,
// shared config, the EC2 instance role). timeout bounds each request
// (0: none).
func NewSQS(queueURL, region, endpoint string, timeout time.Duration) *SQSSink {
	s := &SQSSink{queueURL: queueURL, region: region, endpoint: endpoint, timeout: timeout, fifo: strings.HasSuffix(queueURL, ".fifo")}
	if s.region == "" {
		s.region = regionOf(queueURL)
	}
	s.newClient = s.defaultClient
	return s
}

// regionOf reads the region from an SQS queue URL's host:
// https://sqs.eu-west-1.amazonaws.com/123456789012/q is "eu-west-1".
func regionOf(queueURL string) string {
	u, err := url.Parse(queueURL)
	if err != nil {
		return ""
	}
	parts := strings.Split(u.Hostname(), ".")
	if len(parts) >= 4 && parts[0] == "sqs" && parts[2] == "amazonaws" {
		return parts[1]
	}
	return ""
}

func (s *SQSSink) defaultClient(ctx context.Context) (*sqs.Client, error) {
	var load []func(*config.LoadOptions) error
	if s.region != "" {
		load = append(load, config.WithRegion(s.region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("no region: set the sink's region, use an sqs.REGION.amazonaws.com queue URL, or set AWS_REGION")
	}
	return sqs.NewFromConfig(cfg, func(o *sqs.Options) {
		// The dispatcher retries, with its backoff and the outbox on
		// disk behind it; SDK retries on top would only hold a
		// batch up for longer and hide failures from the counters.
		o.RetryMaxAttempts = 1
		if s.endpoint != "" {
			o.BaseEndpoint = aws.String(s.endpoint)
		}
	}), nil
}

func (s *SQSSink) sqsClient(ctx context.Context) (*sqs.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil {
		c, err := s.newClient(ctx)
		if err != nil {
			return nil, fmt.Errorf("delivery: sqs: %w", err)
		}
		s.client = c
	}
	return s.client, nil
}

// Deliver implements Sink. It returns how many events from the start of
// evs are in the queue: a batch in which one message failed counts up to
// that message, and the dispatcher sends the rest again (messages after it
// that did succeed are sent twice, with the same event id).
func (s *SQSSink) Deliver(ctx context.Context, evs []events.Event) (int, error) {
	c, err := s.sqsClient(ctx)
	if err != nil {
		return 0, err
	}
	done := 0
	for len(evs) > 0 {
		n := min(len(evs), sqsBatch)
		sent, err := s.send(ctx, c, evs[:n])
		done += sent
		if err != nil {
			return done, err
		}
		evs = evs[n:]
	}
	return done, nil
}

func (s *SQSSink) send(ctx context.Context, c *sqs.Client, evs []events.Event) (int, error) {
	in := &sqs.SendMessageBatchInput{QueueUrl: aws.String(s.queueURL)}
	for i := range evs {
		e := &evs[i]
		entry := sqstypes.SendMessageBatchRequestEntry{
			Id:          aws.String(strconv.Itoa(i)),
			MessageBody: aws.String(string(marshal(e))),
			MessageAttributes: map[string]sqstypes.MessageAttributeValue{
				"type": {DataType: aws.String("String"), StringValue: aws.String(string(e.Type))},
				"id":   {DataType: aws.String("String"), StringValue: aws.String(e.ID)},
			},
		}
		if s.fifo {
			entry.MessageDeduplicationId = aws.String(e.ID)
			entry.MessageGroupId = aws.String(cmp.Or(e.User, "-"))
		}
		in.Entries = append(in.Entries, entry)
	}
	if s.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.timeout)
		defer cancel()
	}
	out, err := c.SendMessageBatch(ctx, in)
	if err != nil {
		return 0, fmt.Errorf("delivery: sqs SendMessageBatch to %s: %w", s.queueURL, err)
	}
	if len(out.Failed) == 0 {
		return len(evs), nil
	}
	first := len(evs)
	var why string
	for _, f := range out.Failed {
		i, err := strconv.Atoi(aws.ToString(f.Id))
		if err != nil || i < 0 || i >= len(evs) {
			continue
		}
		if i < first {
			first = i
			why = aws.ToString(f.Code) + ": " + aws.ToString(f.Message)
		}
	}
	if first == len(evs) { // failures that name no entry of ours
		return 0, fmt.Errorf("delivery: sqs: SendMessageBatch to %s: %d entries failed", s.queueURL, len(out.Failed))
	}
	return first, fmt.Errorf("delivery: sqs: event %s not queued in %s: %s", evs[first].ID, s.queueURL, why)
}
