// The checker of test/go-crosscheck.test.ts: decodes a CBOR sequence of agentproto frames or
// records written by picket's encoder into structs shaped as shared/spec/agentproto.md's tables
// say (newest file-op fields, Go's omitempty / always-present split), and re-encodes them with
// fxamacker's canonical mode. Identical bytes mean picket writes what Go writes.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"

	"github.com/fxamacker/cbor/v2"
)

type ExecMsg struct {
	Path string   `cbor:"path"`
	Argv []string `cbor:"argv"`
	Env  []string `cbor:"env"`
	Cwd  string   `cbor:"cwd"`
	Fds  []uint32 `cbor:"fds,omitempty"`
}
type LogEntry struct {
	Lvl int      `cbor:"lvl"`
	Msg string   `cbor:"msg"`
	A   []string `cbor:"a,omitempty"`
}
type AgentConfig struct {
	Keep   []string `cbor:"env_keep"`
	Remove []string `cbor:"env_remove"`
}
type PathQuery struct {
	Paths []string `cbor:"paths,omitempty"`
}
type PathInfoEntry struct {
	Name  string `cbor:"name"`
	Path  string `cbor:"path"`
	Mode  uint32 `cbor:"mode"`
	Size  int64  `cbor:"size"`
	MTime int64  `cbor:"mtime,omitempty"`
}
type PathInfo struct {
	Entries []PathInfoEntry `cbor:"entries"`
}
type FileOpReq struct {
	ID  uint32 `cbor:"id"`
	Op  uint8  `cbor:"op"`
	P   string `cbor:"p,omitempty"`
	NP  string `cbor:"np,omitempty"`
	Fl  int32  `cbor:"fl,omitempty"`
	Mo  uint32 `cbor:"mo,omitempty"`
	UID int    `cbor:"uid,omitempty"`
	GID int    `cbor:"gid,omitempty"`
	H   uint32 `cbor:"h,omitempty"`
	Of  int64  `cbor:"of,omitempty"`
	Sz  int64  `cbor:"sz,omitempty"`
	At  int64  `cbor:"at,omitempty"`
	Mt  int64  `cbor:"mt,omitempty"`
	D   []byte `cbor:"d,omitempty"`
}
type FileStat struct {
	N   string `cbor:"n"`
	S   int64  `cbor:"s"`
	M   uint32 `cbor:"m"`
	T   int64  `cbor:"t,omitempty"`
	At  int64  `cbor:"at,omitempty"`
	Ct  int64  `cbor:"ct,omitempty"`
	UID uint32 `cbor:"uid,omitempty"`
	GID uint32 `cbor:"gid,omitempty"`
	Nl  uint32 `cbor:"nl,omitempty"`
	Rd  uint32 `cbor:"rd,omitempty"`
	Bl  uint64 `cbor:"bl,omitempty"`
	Bs  uint32 `cbor:"bs,omitempty"`
	Ino uint64 `cbor:"ino,omitempty"`
	D   bool   `cbor:"d,omitempty"`
}
type FileStatfs struct {
	B  uint64 `cbor:"b,omitempty"`
	Bf uint64 `cbor:"bf,omitempty"`
	Ba uint64 `cbor:"ba,omitempty"`
	F  uint64 `cbor:"f,omitempty"`
	Ff uint64 `cbor:"ff,omitempty"`
	Bs uint32 `cbor:"bs,omitempty"`
	Fr uint32 `cbor:"fr,omitempty"`
	Nl uint32 `cbor:"nl,omitempty"`
}
type FileDirEntry struct {
	St FileStat `cbor:"st"`
}
type FileOpResp struct {
	ID  uint32         `cbor:"id"`
	Er  uint32         `cbor:"er,omitempty"`
	Em  string         `cbor:"em,omitempty"`
	H   uint32         `cbor:"h,omitempty"`
	D   []byte         `cbor:"d,omitempty"`
	N   int64          `cbor:"n,omitempty"`
	EOF bool           `cbor:"eof,omitempty"`
	P   string         `cbor:"p,omitempty"`
	St  *FileStat      `cbor:"st,omitempty"`
	Sf  *FileStatfs    `cbor:"sf,omitempty"`
	En  []FileDirEntry `cbor:"en,omitempty"`
}
type Frame struct {
	T   uint8        `cbor:"t"`
	S   uint32       `cbor:"s,omitempty"`
	D   []byte       `cbor:"d,omitempty"`
	Sig int          `cbor:"sig,omitempty"`
	C   int          `cbor:"c,omitempty"`
	E   string       `cbor:"e,omitempty"`
	X   *ExecMsg     `cbor:"x,omitempty"`
	L   *LogEntry    `cbor:"l,omitempty"`
	Cfg *AgentConfig `cbor:"cfg,omitempty"`
	Q   *PathQuery   `cbor:"q,omitempty"`
	I   *PathInfo    `cbor:"i,omitempty"`
	Fop *FileOpReq   `cbor:"fop,omitempty"`
	Frp *FileOpResp  `cbor:"frp,omitempty"`
}
type SessionHeader struct {
	Version     string `cbor:"version"`
	StartTime   int64  `cbor:"start_time"`
	LocalUser   string `cbor:"local_user"`
	LocalPID    int    `cbor:"local_pid"`
	SSHAddr     string `cbor:"ssh_addr,omitempty"`
	SSHUser     string `cbor:"ssh_user,omitempty"`
	BackendType string `cbor:"backend_type,omitempty"`
	BackendAddr string `cbor:"backend_addr,omitempty"`
	AgentPath   string `cbor:"agent_path"`
}
type CommandStart struct {
	Seq       uint32  `cbor:"seq"`
	StartTime int64   `cbor:"start_time"`
	Exec      ExecMsg `cbor:"exec"`
}
type RecordedFrame struct {
	Seq uint32 `cbor:"seq"`
	Ts  int64  `cbor:"ts"`
	Dir uint8  `cbor:"dir"`
	F   Frame  `cbor:"frame"`
}
type CommandEnd struct {
	Seq      uint32 `cbor:"seq"`
	EndTime  int64  `cbor:"end_time"`
	ExitCode int    `cbor:"exit_code"`
}
type SessionFooter struct {
	EndTime      int64  `cbor:"end_time"`
	CommandCount uint32 `cbor:"command_count"`
}
type Record struct {
	Type     uint8          `cbor:"type"`
	Header   *SessionHeader `cbor:"header,omitempty"`
	CmdStart *CommandStart  `cbor:"cmd_start,omitempty"`
	Frame    *RecordedFrame `cbor:"frame,omitempty"`
	CmdEnd   *CommandEnd    `cbor:"cmd_end,omitempty"`
	Footer   *SessionFooter `cbor:"footer,omitempty"`
}

func main() {
	em, err := cbor.CanonicalEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	dm, _ := cbor.DecOptions{}.DecMode()
	dec := dm.NewDecoder(bufio.NewReader(os.Stdin))
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	enc := em.NewEncoder(out)
	n := 0
	for {
		var err error
		if os.Args[1] == "record" {
			var r Record
			if err = dec.Decode(&r); err == nil {
				err = enc.Encode(&r)
			}
		} else {
			var f Frame
			if err = dec.Decode(&f); err == nil {
				err = enc.Encode(&f)
			}
		}
		if err == io.EOF {
			return
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "item %d: %v\n", n, err)
			os.Exit(1)
		}
		n++
	}
}
