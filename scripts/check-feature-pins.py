#!/usr/bin/env python3
"""Lists dependencies whose features differ between the test command's two builds:
`cargo build --no-default-features` (the layering check) and `cargo test`. Each one, and every
crate above it, is compiled twice on a fresh machine; the feature pins in Cargo.toml exist to
keep this list down to build-script helpers that only the desktop app's build has (a set with
'' features beside a full one: gl_generator's log, cfg-expr's smallvec, …). Run it after
changing dependencies; add a pin for anything else it lists."""
import subprocess, collections
def tree(args):
    out = subprocess.run(['cargo','tree','--prefix','none','-f','{p} [{f}]']+args, capture_output=True, text=True, cwd=__import__('os').path.join(__import__('os').path.dirname(__file__), '..')).stdout
    d=collections.defaultdict(set)
    for l in out.splitlines():
        l=l.replace(' (*)','').strip()
        if not l or '[' not in l: continue
        head, feats = l.split(' [',1)
        parts=head.split()
        d[parts[0]+' '+parts[1]].add(feats.rstrip(']'))
    return d
a=tree(['--no-default-features','-e','normal,build'])
b=tree(['-e','normal,build,dev'])
n=0
for k in sorted(a):
    if k in b and a[k]!=b[k] and not k.startswith('adapter-studio'):
        n+=1; print(k, ' N:', sorted(a[k]), ' T:', sorted(b[k]))
print('differing', n)
