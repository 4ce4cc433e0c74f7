package kafkaprobe_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"limen/gateway/internal/adapters/kafkaprobe"
)

func TestPing_AnsweringBroker(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := (kafkaprobe.Probe{Brokers: cluster.ListenAddrs()}).Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestPing_NoBroker(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := (kafkaprobe.Probe{Brokers: []string{addr}}).Ping(ctx); err == nil {
		t.Fatal("a closed port answered")
	}
}
