// Package testlint checks the repository's own tests for mistakes the
// compiler and go vet let through.
package testlint

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// stops are the testing.TB methods that end the calling goroutine with
// runtime.Goexit: from any goroutine but the test's they do not stop the
// test (and the test may already have returned).
var stops = map[string]bool{"Fatal": true, "Fatalf": true, "FailNow": true, "Skip": true, "Skipf": true, "SkipNow": true}

// TestNoFatalFromGoroutine fails when a goroutine started by a test (go
// func, or a func literal handed to a WaitGroup's or errgroup's Go) calls
// t.Fatal, t.FailNow, t.Skip, testify's require, or a function or method of
// the same package that (transitively) does. Such goroutines must report
// with t.Error or send their error back on a channel.
func TestNoFatalFromGoroutine(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	dirs := map[string]bool{}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, "_test.go") {
			dirs[filepath.Dir(path)] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) < 10 {
		t.Fatalf("found tests in only %d directories under %s", len(dirs), root)
	}
	var found []string
	for dir := range dirs {
		found = append(found, fatalGoroutines(t, root, dir)...)
	}
	slices.Sort(found)
	for _, f := range found {
		t.Error(f)
	}
}

// fatalGoroutines checks the Go files of one directory (one package and
// its external test package, which share helpers by name only rarely).
func fatalGoroutines(t *testing.T, root, dir string) []string {
	t.Helper()
	fset := token.NewFileSet()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	// The package's functions and methods, by name, and which of them stop
	// their goroutine (to a fixed point: a helper calling a helper).
	funcs, methods := map[string][]*ast.BlockStmt{}, map[string][]*ast.BlockStmt{}
	for _, f := range files {
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			if fd.Recv == nil {
				funcs[fd.Name.Name] = append(funcs[fd.Name.Name], fd.Body)
			} else {
				methods[fd.Name.Name] = append(methods[fd.Name.Name], fd.Body)
			}
		}
	}
	fatalFunc, fatalMethod := map[string]bool{}, map[string]bool{}
	var stopsHere func(c *ast.CallExpr, locals map[string]bool) (string, bool)
	stopsHere = func(c *ast.CallExpr, locals map[string]bool) (string, bool) {
		switch fn := c.Fun.(type) {
		case *ast.Ident:
			return fn.Name, !locals[fn.Name] && fatalFunc[fn.Name]
		case *ast.IndexExpr: // a generic function
			if id, ok := fn.X.(*ast.Ident); ok {
				return id.Name, !locals[id.Name] && fatalFunc[id.Name]
			}
		case *ast.SelectorExpr:
			if id, ok := fn.X.(*ast.Ident); ok && id.Name == "require" {
				return "require." + fn.Sel.Name, true
			}
			return fn.Sel.Name, stops[fn.Sel.Name] || fatalMethod[fn.Sel.Name]
		}
		return "", false
	}
	// calls reports the calls in body outside nested func literals (those
	// run when called, which the fixed point does not follow).
	calls := func(body ast.Node, visit func(*ast.CallExpr)) {
		ast.Inspect(body, func(n ast.Node) bool {
			if _, ok := n.(*ast.FuncLit); ok && n != body {
				return false
			}
			if c, ok := n.(*ast.CallExpr); ok {
				visit(c)
			}
			return true
		})
	}
	for changed := true; changed; {
		changed = false
		for _, set := range []struct {
			bodies map[string][]*ast.BlockStmt
			fatal  map[string]bool
		}{{funcs, fatalFunc}, {methods, fatalMethod}} {
			for name, bodies := range set.bodies {
				if set.fatal[name] {
					continue
				}
				for _, b := range bodies {
					calls(b, func(c *ast.CallExpr) {
						if _, stop := stopsHere(c, nil); stop {
							set.fatal[name] = true
						}
					})
				}
				if set.fatal[name] {
					changed = true
				}
			}
		}
	}
	var out []string
	check := func(lit *ast.FuncLit, started token.Pos, locals map[string]bool) {
		ast.Inspect(lit.Body, func(n ast.Node) bool {
			c, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			if name, stop := stopsHere(c, locals); stop {
				rel, _ := filepath.Rel(root, fset.Position(c.Pos()).Filename)
				out = append(out, rel+":"+strconv.Itoa(fset.Position(c.Pos()).Line)+": a goroutine (started on line "+
					strconv.Itoa(fset.Position(started).Line)+") calls "+name+", which may call t.Fatal/FailNow/Skip: use t.Error or send the error back")
			}
			return true
		})
	}
	for _, f := range files {
		if !strings.HasSuffix(fset.Position(f.Pos()).Filename, "_test.go") {
			continue
		}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			locals := localFuncVars(fd.Body)
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				switch s := n.(type) {
				case *ast.GoStmt:
					if lit, ok := s.Call.Fun.(*ast.FuncLit); ok {
						check(lit, s.Pos(), locals)
					} else if name, stop := stopsHere(s.Call, locals); stop {
						rel, _ := filepath.Rel(root, fset.Position(s.Pos()).Filename)
						out = append(out, rel+":"+strconv.Itoa(fset.Position(s.Pos()).Line)+": go "+name+"(...) may call t.Fatal/FailNow/Skip")
					}
				case *ast.CallExpr:
					if sel, ok := s.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Go" {
						for _, a := range s.Args {
							if lit, ok := a.(*ast.FuncLit); ok {
								check(lit, s.Pos(), locals)
							}
						}
					}
				}
				return true
			})
		}
	}
	return out
}

// localFuncVars names the variables a function body declares (a closure
// named like a package function is not that function).
func localFuncVars(body *ast.BlockStmt) map[string]bool {
	locals := map[string]bool{}
	ast.Inspect(body, func(n ast.Node) bool {
		switch s := n.(type) {
		case *ast.AssignStmt:
			if s.Tok == token.DEFINE {
				for _, l := range s.Lhs {
					if id, ok := l.(*ast.Ident); ok {
						locals[id.Name] = true
					}
				}
			}
		case *ast.ValueSpec:
			for _, id := range s.Names {
				locals[id.Name] = true
			}
		}
		return true
	})
	return locals
}
