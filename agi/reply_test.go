package agi

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestReadReply(t *testing.T) {
	usage := "520-Invalid command syntax.  Proper usage follows:\n" +
		"Stream the given <replaceable>file</replaceable>, and receive DTMF data.\n" +
		"Returns the digits received from the channel at the other end.\n" +
		"520 End of proper usage.\n"
	tests := []struct {
		name    string
		in      string
		want    Reply
		hangup  bool
		wantErr error
	}{
		{name: "result only", in: "200 result=0\n",
			want: Reply{Code: 200, Result: 0, RawResult: "0"}},
		{name: "with data", in: "200 result=1 (Local/s@caller-sim-00000000;1)\n",
			want: Reply{Code: 200, Result: 1, RawResult: "1", Data: "Local/s@caller-sim-00000000;1"}},
		{name: "empty data", in: "200 result=1 ()\n",
			want: Reply{Code: 200, Result: 1, RawResult: "1"}},
		{name: "data with parentheses", in: "200 result=1 (a b (c) d)\n",
			want: Reply{Code: 200, Result: 1, RawResult: "1", Data: "a b (c) d"}},
		{name: "endpos", in: "200 result=0 endpos=8000\n",
			want: Reply{Code: 200, RawResult: "0", Extra: map[string]string{"endpos": "8000"}}},
		{name: "data and endpos", in: "200 result=1 (timeout) endpos=1234\n",
			want: Reply{Code: 200, Result: 1, RawResult: "1", Data: "timeout", Extra: map[string]string{"endpos": "1234"}}},
		{name: "digit and extras", in: "200 result=1 (digit) digit=5 endpos=100\n",
			want: Reply{Code: 200, Result: 1, RawResult: "1", Data: "digit", Extra: map[string]string{"digit": "5", "endpos": "100"}}},
		{name: "get data digits", in: "200 result=1234\n",
			want: Reply{Code: 200, Result: 1234, RawResult: "1234"}},
		{name: "get data leading zero", in: "200 result=0042\n",
			want: Reply{Code: 200, Result: 42, RawResult: "0042"}},
		{name: "get data star", in: "200 result=12*3\n",
			want: Reply{Code: 200, RawResult: "12*3"}},
		{name: "get data timeout with digits", in: "200 result=12 (timeout)\n",
			want: Reply{Code: 200, Result: 12, RawResult: "12", Data: "timeout"}},
		{name: "get data timeout empty", in: "200 result= (timeout)\n",
			want: Reply{Code: 200, Data: "timeout"}},
		{name: "hangup result", in: "200 result=-1\n",
			want: Reply{Code: 200, Result: -1, RawResult: "-1"}},
		{name: "stream failure", in: "200 result=-1 endpos=0\n",
			want: Reply{Code: 200, Result: -1, RawResult: "-1", Extra: map[string]string{"endpos": "0"}}},
		{name: "exec no such app", in: "200 result=-2\n",
			want: Reply{Code: 200, Result: -2, RawResult: "-2"}},
		{name: "trailing text", in: "200 result=-1 Gosub label not found\n",
			want: Reply{Code: 200, Result: -1, RawResult: "-1", Text: "Gosub label not found"}},
		{name: "510", in: "510 Invalid or unknown command\n",
			want: Reply{Code: 510, Text: "Invalid or unknown command"}},
		{name: "511", in: "511 Command Not Permitted on a dead channel or intercept routine\n",
			want: Reply{Code: 511, Text: "Command Not Permitted on a dead channel or intercept routine"}},
		{name: "503", in: "503 result=-2 Memory allocation failure\n",
			want: Reply{Code: 503, Text: "result=-2 Memory allocation failure"}},
		{name: "520 multi-line", in: usage,
			want: Reply{Code: 520, Text: "Stream the given <replaceable>file</replaceable>, and receive DTMF data.\n" +
				"Returns the digits received from the channel at the other end."}},
		{name: "520 single line", in: "520 Invalid command syntax.  Proper usage not available.\n",
			want: Reply{Code: 520, Text: "Invalid command syntax.  Proper usage not available."}},
		{name: "HANGUP before reply", in: "HANGUP\n200 result=1 (SIP/traveler-00000001)\n",
			want: Reply{Code: 200, Result: 1, RawResult: "1", Data: "SIP/traveler-00000001"}, hangup: true},
		{name: "HANGUP before 511", in: "HANGUP\n511 Command Not Permitted on a dead channel or intercept routine\n",
			want: Reply{Code: 511, Text: "Command Not Permitted on a dead channel or intercept routine"}, hangup: true},
		{name: "HANGUP before usage", in: "HANGUP\n" + usage,
			want: Reply{Code: 520, Text: "Stream the given <replaceable>file</replaceable>, and receive DTMF data.\n" +
				"Returns the digits received from the channel at the other end."}, hangup: true},
		{name: "provisional 100 skipped", in: "100 result=0 Trying...\n200 result=0 Gosub complete\n",
			want: Reply{Code: 200, RawResult: "0", Text: "Gosub complete"}},
		{name: "CRLF tolerated", in: "200 result=1 (x)\r\n",
			want: Reply{Code: 200, Result: 1, RawResult: "1", Data: "x"}},
		{name: "bare code", in: "200\n", wantErr: ErrProtocol},
		{name: "garbage", in: "hello world\n", wantErr: ErrProtocol},
		{name: "short", in: "20\n", wantErr: ErrProtocol},
		{name: "code glued to text", in: "200result=0\n", wantErr: ErrProtocol},
		{name: "200 without result", in: "200 ok\n", wantErr: ErrProtocol},
		{name: "unterminated data", in: "200 result=1 (abc\n", wantErr: ErrProtocol},
		{name: "empty line", in: "\n", wantErr: ErrProtocol},
		{name: "eof", in: "", wantErr: io.EOF},
		{name: "eof mid line", in: "200 result=0", wantErr: io.ErrUnexpectedEOF},
		{name: "HANGUP then eof", in: "HANGUP\n", wantErr: io.EOF, hangup: true},
		{name: "usage without end", in: "520-Invalid\nusage\n", wantErr: io.EOF},
		{name: "HANGUP flood", in: strings.Repeat("HANGUP\n", maxSkippedLines+2) + "200 result=0\n", wantErr: ErrProtocol, hangup: true},
		{name: "line too long", in: "200 result=1 (" + strings.Repeat("x", 200) + ")\n", wantErr: ErrLineTooLong},
		{name: "usage too long", in: "520-x\n" + strings.Repeat(strings.Repeat("u", 100)+"\n", 20) + "520 End\n", wantErr: ErrLineTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, hangup, err := readReply(newLineReader(strings.NewReader(tt.in), 128))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatalf("err = %v", err)
			} else if !reflect.DeepEqual(rep, tt.want) {
				t.Errorf("reply = %+v\nwant    %+v", rep, tt.want)
			}
			if hangup != tt.hangup {
				t.Errorf("hangup = %v, want %v", hangup, tt.hangup)
			}
		})
	}
}

// Every reply Asterisk sent in the recordings parses, and the stream of
// replies after a command is exactly consumed.
func TestReadReplyFixtures(t *testing.T) {
	for name, chunks := range rawFixtures(t) {
		for i, stream := range replyStreams(chunks) {
			lr := newLineReader(strings.NewReader(string(stream)), DefaultMaxLineBytes)
			for {
				_, _, err := readReply(lr)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Errorf("%s stream %d %q: %v", name, i, stream, err)
					break
				}
			}
		}
	}
}

func TestReplyErrorIs(t *testing.T) {
	all := []error{ErrHangup, ErrNotPermitted, ErrInvalidCommand, ErrUsage, ErrNoSuchApp, ErrProtocol}
	tests := []struct {
		rep  Reply
		want []error
	}{
		{Reply{Code: 510, Text: "Invalid or unknown command"}, []error{ErrInvalidCommand}},
		// 511 means a dead channel: both sentinels.
		{Reply{Code: 511}, []error{ErrNotPermitted, ErrHangup}},
		{Reply{Code: 520}, []error{ErrUsage}},
		{Reply{Code: 200, Result: -1, RawResult: "-1"}, []error{ErrHangup}},
		{Reply{Code: 200, Result: -2, RawResult: "-2"}, []error{ErrNoSuchApp}},
		{Reply{Code: 503, Text: "result=-2 Memory allocation failure"}, nil},
	}
	for _, tt := range tests {
		var err error = &ReplyError{Reply: tt.rep, Command: "GET DATA"}
		wrapped := errors.Join(errors.New("context"), err)
		for _, s := range all {
			want := false
			for _, w := range tt.want {
				want = want || w == s
			}
			if got := errors.Is(wrapped, s); got != want {
				t.Errorf("code %d result %d: errors.Is(%v) = %v, want %v", tt.rep.Code, tt.rep.Result, s, got, want)
			}
		}
		var re *ReplyError
		if !errors.As(wrapped, &re) || re.Reply.Code != tt.rep.Code {
			t.Errorf("errors.As failed for %+v", tt.rep)
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "agi: GET DATA: ") {
			t.Errorf("Error() = %q", msg)
		}
	}
}
