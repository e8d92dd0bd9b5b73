# rows.sh — the table of diffcli.sh: one qemu-img command line per row
# (sourced by diffcli.sh, which explains the row syntax and the inputs).
#
# Inputs in every row's directory:
#   pat.raw    4M raw: 0x11 at 0 (64k), 0x22 at 1M (128k), 0x33 at 3M (4k)
#   r1.raw     1M raw, all zeros          one.img / empty.img  1 / 0 bytes
#   v3.qcow2, v2.qcow2   pat.raw as qcow2 compat 1.1 / 0.10
#   base.qcow2 <- ovl.qcow2 <- top.qcow2   a three-image chain (qcow2 -F)
#   ovlr.qcow2 overlay of pat.raw (-F raw)   broken.qcow2  backing missing
#   comp.qcow2 compressed pat.raw          snap.qcow2  snapshots s1, s2
#   zero.qcow2 with zero clusters          bm.qcow2  bitmaps b0, b1 (disabled)
#   small.qcow2 4k clusters, refcount_bits=8    l.qcow2  one leaked cluster
#   pat.{vmdk,vdi,vpc,vhdx,qed,qcow}  pat.raw converted; flat.vmdk fixed.vpc
#   enc.qcow2, enc.luks  LUKS, secret "pw"      adir/  a directory
#   s-*        sample images other tools made (../shared/samples), if present
SEC='secret,id=s0,data=pw'

# --- the dispatcher ---------------------------------------------------------
R --
R -x "version line names imgpipe, not Debian's build" -- -V
R -x "version line names imgpipe, not Debian's build" -- --version
R -x "help lists imgpipe's formats, says imgpipe run" -- -h
R -x "help lists imgpipe's formats, says imgpipe run" -- --help
R -x "help lists imgpipe's formats, says imgpipe run" -- info -h
R -- frobnicate pat.raw
R -- help
R -- --frob info pat.raw
R -- info
R -- info --frob pat.raw
R -- info -z pat.raw
R -- info pat.raw -f
R -- info pat.raw --output
R -- info pat.raw v3.qcow2
R -- info --out=json --backing-ch top.qcow2
R -- info -f raw -- pat.raw
R -- info pat.raw --output json -f raw

# --- create -----------------------------------------------------------------
R -- create -f raw n.raw 1M
R -- create -f qcow2 n.qcow2 1M
R -- create n.img 64k
R -- create -q -f qcow2 n.qcow2 1M
R -- create -f qcow2 n.qcow2
R -- create
R -- create -f qcow2
R -- create -f qcow2 n.qcow2 1M extra
R -- create -f qcow2 n.qcow2 1Q
R -- create -f qcow2 n.qcow2 -1
R -- create -f qcow2 n.qcow2 0
R -- create -f raw n.raw 0
R -- create -f qcow2 n.qcow2 1.5G
R -- create -f qcow2 n.qcow2 1.5k
R -- create -f qcow2 n.qcow2 9E
R -- create -f qcow2 n.qcow2 8E
R -- create -f qcow2 n.qcow2 1E
R -- create -f raw n.raw 1P
R -- create -f qcow2 n.qcow2 1P
R -- create -f vpc n.vpc 3T
R -- create -f vdi n.vdi 1P
R -- create -f vhdx n.vhdx 1P
R -- create -f qed n.qed 1P
R -- create -f qcow2 -o data_file=d.raw n.qcow2 1E
R -- create -f qcow2 n.qcow2 1T
R -- create -f raw n.raw 1k
R -- create -f raw n.raw 1K
R -- create -f raw n.raw 1G
R -- create -f raw n.raw 512b
R -- create -f raw n.raw 1000
R -- create -f qcow2 n.qcow2 1000
R -- create -f vdi n.vdi 1000
R -- create -f vpc n.vpc 1000
R -- create -f qcow2 n.qcow2 12abc
R -- create -f qcow2 n.qcow2 ''
R -- create -f qcow2 n.qcow2 0x100000
R -- create -f qcow2 n.qcow2 1M2
R -- create -f foo n.img 1M
R -- create -f qcow2 -b base.qcow2 -F qcow2 n.qcow2
R -- create -f qcow2 -b base.qcow2 -F qcow2 n.qcow2 8M
R -- create -f qcow2 -b base.qcow2 n.qcow2
R -- create -f qcow2 -b base.qcow2 -F raw n.qcow2
R -- create -f qcow2 -b pat.raw -F raw n.qcow2
R -- create -f qcow2 -b @D@/base.qcow2 -F qcow2 n.qcow2
R -- create -f qcow2 -b missing.qcow2 -F qcow2 n.qcow2
R -- create -f qcow2 -u -b missing.qcow2 -F qcow2 n.qcow2 1M
R -- create -f qcow2 -u -b missing.qcow2 -F qcow2 n.qcow2
R -- create -f qcow2 -F qcow2 n.qcow2 1M
R -- create -f raw -b base.qcow2 -F qcow2 n.raw 1M
R -- create -f qcow2 -b broken.qcow2 -F qcow2 n.qcow2
R -- create -f raw pat.raw 1M
R -- create -f qcow2 v3.qcow2 1M
R -- create -f qcow2 adir 1M
R -- create -f qcow2 nodir/n.qcow2 1M
R -- create -f qcow2 -o help
R -- create -f qcow2 -o '?'
R -- create -o help
R -- create -f raw -o help
R -- create -f vmdk -o help
R -- create -f vdi -o help
R -- create -f vpc -o help
R -- create -f vhdx -o help
R -- create -f qed -o help
R -- create -f qcow -o help
R -- create -f luks -o help
R -- create -f qcow2 -o help n.qcow2 1M
R -- create -f qcow2 -o cluster_size=4k n.qcow2 1M
R -- create -f qcow2 -o cluster_size=2M n.qcow2 4M
R -- create -f qcow2 -o cluster_size=3k n.qcow2 1M
R -- create -f qcow2 -o cluster_size=256 n.qcow2 1M
R -- create -f qcow2 -o compat=0.10 n.qcow2 1M
R -- create -f qcow2 -o compat=v3 n.qcow2 1M
R -- create -f qcow2 -o compat=2.0 n.qcow2 1M
R -- create -f qcow2 -o lazy_refcounts=on n.qcow2 1M
R -- create -f qcow2 -o compat=0.10,lazy_refcounts=on n.qcow2 1M
R -- create -f qcow2 -o preallocation=metadata n.qcow2 1M
R -- create -f qcow2 -o preallocation=falloc n.qcow2 1M
R -- create -f qcow2 -o preallocation=full n.qcow2 1M
R -- create -f qcow2 -o preallocation=bogus n.qcow2 1M
R -- create -f qcow2 -o refcount_bits=1 n.qcow2 1M
R -- create -f qcow2 -o refcount_bits=3 n.qcow2 1M
R -- create -f qcow2 -o extended_l2=on n.qcow2 1M
R -- create -f qcow2 -o extended_l2=on,cluster_size=4k n.qcow2 1M
R -- create -f qcow2 -o compression_type=zstd n.qcow2 1M
R -- create -f qcow2 -o compression_type=lzo n.qcow2 1M
R -- create -f qcow2 -o bogus=1 n.qcow2 1M
R -- create -f qcow2 -o size=1M n.qcow2
R -- create -f qcow2 -o size=1M n.qcow2 2M
R -- create -f qcow2 -o data_file=d.raw n.qcow2 1M
R -- create -f qcow2 -o data_file=d.raw,data_file_raw=on n.qcow2 1M
R -- create -f qcow2 -o data_file_raw=on n.qcow2 1M
R -- create -f qcow2 -o compat=1.1 -o cluster_size=128k n.qcow2 1M
R -- create -f qcow2 -o , n.qcow2 1M
R -- create -f qcow2 -o cluster_size=64k, n.qcow2 1M
R -- create -f qcow2 -o lazy_refcounts=maybe n.qcow2 1M
R -- create -f qcow2 -o backing_file=base.qcow2,backing_fmt=qcow2 n.qcow2
R -- create -f raw -o preallocation=full n.raw 64k
R -- create -f raw -o preallocation=falloc n.raw 64k
R -- create -f vmdk n.vmdk 1M
R -x "streamOptimized in VMware's layout (grain tables, directory, footer and end-of-stream marker after the grains), as VMware and OVA consumers expect; qemu-img reads both" -- create -f vmdk -o subformat=streamOptimized n.vmdk 1M
R -- create -f vmdk -o subformat=monolithicFlat n.vmdk 1M
R -- create -f vmdk -o subformat=bogus n.vmdk 1M
R -- create -f vdi n.vdi 1M
R -- create -f vdi -o static=on n.vdi 1M
R -- create -f vdi -o static=maybe n.vdi 1M
R -- create -f vpc -o subformat=bogus n.vpc 1M
R -- create -f vhdx -o block_size=3M n.vhdx 1M
R -- create -f vhdx -o subformat=bogus n.vhdx 1M
R -- create -f qed -o cluster_size=3k n.qed 1M
R -- create -f qcow -o encryption=on n.qcow 1M
R -- create -f vmdk -o adapter_type=bogus n.vmdk 1M
R -- create -f vdi -o preallocation=bogus n.vdi 1M
R -- create -f vpc pat.raw 3T
R -- create -f vpc n.vpc 1M
R -f vpc -- create -f vpc -o subformat=fixed n.vpc 1M
R -f vpc -- create -f vpc -o subformat=fixed,force_size=on n.vpc 1M
R -- create -f vhdx n.vhdx 1M
R -- create -f vhdx -o subformat=fixed n.vhdx 1M
R -- create -f qed n.qed 1M
R -- create -f qed -b base.qcow2 -F qcow2 n.qed
R -- create -f qcow n.qcow 1M
R -- create -f luks n.luks 1M
R -- create --object "$SEC" -f qcow2 -o encrypt.format=luks n.qcow2 1M
R -- create --object secret,id=s0 -f raw n.raw 1M
R -- create --object bogus,id=x -f raw n.raw 1M

# --- info -------------------------------------------------------------------
for f in pat.raw r1.raw v3.qcow2 v2.qcow2 comp.qcow2 snap.qcow2 zero.qcow2 bm.qcow2 \
  small.qcow2 l.qcow2 ovl.qcow2 ovlr.qcow2 pat.vmdk flat.vmdk pat.vdi pat.vpc fixed.vpc \
  pat.vhdx pat.qed pat.qcow enc.qcow2 enc.luks; do
  R -- info "$f"
  R -- info --output=json "$f"
done
R -- info --backing-chain top.qcow2
R -- info --backing-chain --output=json top.qcow2
R -- info --backing-chain ovlr.qcow2
R -- info --output=human --backing-chain v3.qcow2
R -- info broken.qcow2
R -- info --backing-chain broken.qcow2
R -- info -U v3.qcow2
R -- info --force-share --output=json ovl.qcow2
R -- info -f qcow2 pat.raw
R -- info -f vmdk v3.qcow2
R -- info -f raw v3.qcow2
R -- info -f foo v3.qcow2
R -- info empty.img
R -- info --output=json empty.img
R -- info one.img
R -- info adir
R -- info nonexist.img
R -- info --output=xml v3.qcow2
R -- info @D@/ovl.qcow2
R -- info --output=json @D@/top.qcow2
R -- info --image-opts driver=qcow2,file.filename=v3.qcow2
R -- info --image-opts file.filename=v3.qcow2
R -- info --image-opts -f qcow2 v3.qcow2
R -- info --image-opts driver=qcow2,file.filename=nonexist.qcow2
R -- info --image-opts driver=qcow2,file.filename=pat.raw
R -- info --image-opts driver=foo,file.filename=pat.raw
R -- info --image-opts driver=raw
R -- info --image-opts pat.raw
R -- info --image-opts file=pat.raw
R -- info --image-opts ''
R -- info --image-opts --output=json driver=raw,file.driver=file,file.filename=pat.raw
R -- info --image-opts driver=qcow2,file.filename=broken.qcow2
R -- info --image-opts file.filename=pat.raw,bogus=1
R -- info --image-opts driver=qcow2,file.filename=v3.qcow2,bogus=1
R -- info --image-opts driver=qcow2,file.filename=v3.qcow2,file.bogus=1
R -- info --image-opts driver=qcow2,file.filename=v3.qcow2,backing=null
R -- info --image-opts driver=qcow2,file.filename=v3.qcow2,backing.bogus=1
R -- info --image-opts driver=raw,file.filename=pat.raw,size=1M,offset=4k,node-name=n,read-only=on,discard=unmap,file.locking=off,file.aio=threads
R -- info --image-opts driver=qcow2,file.filename=v3.qcow2,l2-cache-size=1M,lazy-refcounts=on,pass-discard-request=on,encrypt.format=aes
R -- info --image-opts driver=raw,file.filename=v3.qcow2,l2-cache-size=1M
R -- info 'json:{"driver":"raw","file":{"driver":"file","filename":"pat.raw"},"bogus":1}'
R -- info 'json:{"driver":"raw","file":{"driver":"file","filename":"pat.raw","bogus":1}}'
R -- info --image-opts driver=raw,offset=512,file.filename=pat.raw
R -- info --output=json --image-opts driver=raw,offset=1000,size=1M,file.filename=pat.raw
R -- info --image-opts driver=raw,offset=8M,file.filename=pat.raw
R -- info --image-opts driver=raw,offset=1M,size=4M,file.filename=pat.raw
R -- info --image-opts driver=raw,size=1000,file.filename=pat.raw
R -- map --output=json --image-opts driver=raw,offset=1M,file.filename=pat.raw
R -- convert --image-opts driver=raw,offset=1M,size=1M,file.filename=pat.raw -O qcow2 o.qcow2
R -- resize --image-opts driver=raw,offset=1M,size=1M,file.filename=pat.raw 2M
R -- compare --image-opts driver=raw,offset=64k,file.filename=pat.raw driver=raw,offset=64k,file.filename=pat.raw
R -- info --object "$SEC" --image-opts driver=luks,key-secret=s0,file.filename=enc.luks
R -- info --object "$SEC" --output=json --image-opts driver=qcow2,encrypt.key-secret=s0,file.filename=enc.qcow2

# --- check ------------------------------------------------------------------
for f in v3.qcow2 v2.qcow2 comp.qcow2 snap.qcow2 zero.qcow2 bm.qcow2 small.qcow2 ovl.qcow2 \
  l.qcow2 pat.vdi pat.vhdx pat.qed pat.vmdk pat.vpc pat.qcow pat.raw; do
  R -- check "$f"
done
R -- check --output=json v3.qcow2
R -- check --output=json l.qcow2
R -- check --output=json comp.qcow2
R -- check --output=json pat.raw
R -- check -f raw pat.raw
R -- check -q l.qcow2
R -- check -r leaks l.qcow2
R -- check -r all l.qcow2
R -- check -r all --output=json l.qcow2
R -- check -r leaks v3.qcow2
R -- check -r bogus l.qcow2
R -- check -r leaks -U l.qcow2
R -- check -U v3.qcow2
R -- check nonexist.qcow2
R -- check empty.img
R -- check broken.qcow2
R -- check -f vmdk v3.qcow2
R -- check --image-opts driver=qcow2,file.filename=l.qcow2
R -- check enc.qcow2
R -- check --object "$SEC" --image-opts driver=qcow2,encrypt.key-secret=s0,file.filename=enc.qcow2

# --- convert ----------------------------------------------------------------
R -- convert pat.raw o.raw
R -- convert -O qcow2 pat.raw o.qcow2
R -- convert -O raw v3.qcow2 o.raw
R -- convert -O qcow2 -o compat=0.10 pat.raw o.qcow2
R -- convert -c -O qcow2 pat.raw o.qcow2
R -- convert -c -O qcow2 -o compression_type=zstd pat.raw o.qcow2
R -- convert -c -O raw pat.raw o.raw
R -x "qemu-img 7.2 exits 1 without a message after writing a good image (qcow refuses the end-of-stream compressed write)" -- convert -c -O qcow pat.raw o.qcow
R -- convert -O vmdk pat.raw o.vmdk
R -x "streamOptimized in VMware's layout (grain tables, directory, footer and end-of-stream marker after the grains), as VMware and OVA consumers expect; qemu-img reads both" -- convert -O vmdk -o subformat=streamOptimized pat.raw o.vmdk
R -- convert -O vdi pat.raw o.vdi
R -- convert -O vpc pat.raw o.vpc
R -- convert -O vhdx pat.raw o.vhdx
R -- convert -O qed pat.raw o.qed
R -- convert -O qcow pat.raw o.qcow
R -- convert -O qcow2 comp.qcow2 o.qcow2
R -- convert -O qcow2 zero.qcow2 o.qcow2
R -- convert -O qcow2 top.qcow2 o.qcow2
R -- convert -O raw top.qcow2 o.raw
R -- convert -O qcow2 pat.vmdk o.qcow2
R -- convert -O qcow2 pat.vhdx o.qcow2
R -- convert -O raw pat.vpc o.raw
R -- convert -O raw pat.vdi o.raw
R -- convert -O raw pat.qed o.raw
R -- convert -O raw pat.qcow o.raw
R -- convert -O qcow2 -B base.qcow2 -F qcow2 ovl.qcow2 o.qcow2
R -- convert -O qcow2 -B base.qcow2 ovl.qcow2 o.qcow2
R -- convert -O qcow2 -o backing_file=base.qcow2,backing_fmt=qcow2 ovl.qcow2 o.qcow2
R -- convert -O raw -B base.qcow2 -F qcow2 ovl.qcow2 o.raw
R -- convert -O qcow2 -o cluster_size=4k pat.raw o.qcow2
R -- convert -O qcow2 -o preallocation=metadata pat.raw o.qcow2
R -- convert -O qcow2 -o help pat.raw o.qcow2
R -- convert -O qcow2 -o '?' pat.raw o.qcow2
R -- convert -O qcow2 -o bogus=1 pat.raw o.qcow2
R -- convert -O foo pat.raw o.img
R -- convert -S 0 -O qcow2 pat.raw o.qcow2
R -- convert -S 0 -O raw v3.qcow2 o.raw
R -- convert -S 64k -O qcow2 pat.raw o.qcow2
R -- convert -S 100 -O qcow2 pat.raw o.qcow2
R -- convert -S 1Q -O qcow2 pat.raw o.qcow2
R -- convert -m 1 -O qcow2 pat.raw o.qcow2
R -- convert -m 0 -O qcow2 pat.raw o.qcow2
R -- convert -m 17 -O qcow2 pat.raw o.qcow2
R -a "-W: qemu allocates clusters in coroutine completion order" -- convert -W -O qcow2 pat.raw o.qcow2
R -- convert -n -O qcow2 pat.raw v2.qcow2
R -- convert -n -O raw v3.qcow2 r1.raw
R -- convert -n -O raw pat.raw nonexist.raw
R -- convert -n -O qcow2 -o cluster_size=4k pat.raw v2.qcow2
R -- convert --target-is-zero -O qcow2 pat.raw o.qcow2
R -- convert -n --target-is-zero -O qcow2 pat.raw v2.qcow2
R -- convert --bitmaps -O qcow2 bm.qcow2 o.qcow2
R -x "convert is atomic: a failed convert leaves no target under the final name (docs/RELIABILITY.md); qemu-img leaves the image it created" -- convert --bitmaps -O raw bm.qcow2 o.raw
R -- convert --skip-broken-bitmaps -O qcow2 bm.qcow2 o.qcow2
R -- convert --bitmaps --skip-broken-bitmaps -O qcow2 bm.qcow2 o.qcow2
R -- convert -O qcow2 -l s1 snap.qcow2 o.qcow2
R -- convert -O qcow2 -l snapshot.name=s1 snap.qcow2 o.qcow2
R -- convert -O qcow2 -l snapshot.id=2 snap.qcow2 o.qcow2
R -- convert -O qcow2 -l nosuch snap.qcow2 o.qcow2
R -- convert -O qcow2 -l snapshot.foo=1 snap.qcow2 o.qcow2
R -- convert -O raw pat.raw v3.qcow2 o.raw
R -- convert -O raw r1.raw pat.raw o.raw
R -- convert pat.raw
R -- convert
R -- convert nonexist.raw o.raw
R -- convert -f qcow2 pat.raw o.raw
R -- convert -U -O qcow2 pat.raw o.qcow2
R -- convert -q -O qcow2 pat.raw o.qcow2
R -- convert -C -O raw pat.raw o.raw
R -- convert -T writeback -t writeback -O qcow2 pat.raw o.qcow2
R -x "convert is atomic: a failed convert leaves no target under the final name (docs/RELIABILITY.md); qemu-img leaves the image it created" -- convert -t bogus -O qcow2 pat.raw o.qcow2
R -- convert --salvage -O qcow2 pat.raw o.qcow2
R -- convert -r 100M -O qcow2 pat.raw o.qcow2
R -- convert -O raw -o preallocation=full v3.qcow2 o.raw
R -- convert -O raw -o preallocation=falloc v3.qcow2 o.raw
R -- convert -S 4k -O raw v3.qcow2 o.raw
R -- convert -O qcow2 -o compat=0.10 zero.qcow2 o.qcow2
R -- convert -O qcow2 -o extended_l2=on,cluster_size=128k pat.raw o.qcow2
R -- convert -O qcow2 -o refcount_bits=1,lazy_refcounts=on pat.raw o.qcow2
R -- convert -O qcow2 -o data_file=d.raw pat.raw o.qcow2
R -f vpc -- convert -O vpc -o subformat=fixed pat.raw o.vpc
R -- convert -O vdi -o static=on pat.raw o.vdi
R -- convert -O vhdx -o subformat=fixed pat.raw o.vhdx
R -- convert -O vmdk -o subformat=monolithicFlat pat.raw o.vmdk
R -- convert -c -O qcow2 top.qcow2 o.qcow2
R -- convert -O qcow2 -B ovl.qcow2 -F qcow2 top.qcow2 o.qcow2
R -- convert -O qcow2 pat.raw adir
R -- convert -O qcow2 pat.raw nodir/o.qcow2
R -- convert -O qcow2 broken.qcow2 o.qcow2
R -- convert -O qcow2 empty.img o.qcow2
R -- convert --image-opts driver=qcow2,file.filename=v3.qcow2 o.raw
R -- convert --target-image-opts -O qcow2 pat.raw o.qcow2
R -- convert -n --target-image-opts pat.raw driver=qcow2,file.filename=v2.qcow2
R -- convert --object "$SEC" --image-opts driver=luks,key-secret=s0,file.filename=enc.luks o.raw
R -- convert --object secret,id=s0,data=wrong --image-opts driver=luks,key-secret=s0,file.filename=enc.luks o.raw
R -- convert enc.luks o.raw

# --- compare ----------------------------------------------------------------
R -- compare pat.raw v3.qcow2
R -- compare -s pat.raw v3.qcow2
R -- compare pat.raw v2.qcow2
R -- compare pat.raw comp.qcow2
R -- compare pat.raw base.qcow2
R -- compare -s pat.raw base.qcow2
R -- compare -q pat.raw base.qcow2
R -- compare -f raw -F qcow2 pat.raw v3.qcow2
R -- compare -f qcow2 -F qcow2 pat.raw v3.qcow2
R -- compare pat.raw r1.raw
R -- compare r1.raw pat.raw
R -- compare -s r1.raw pat.raw
R -- compare r1.raw empty.img
R -- compare ovl.qcow2 top.qcow2
R -- compare top.qcow2 ovl.qcow2
R -- compare -s zero.qcow2 zero.qcow2
R -- compare -s zero.qcow2 v3.qcow2
R -- compare -s v3.qcow2 pat.raw
R -- compare -s comp.qcow2 v3.qcow2
R -- compare snap.qcow2 v3.qcow2
R -- compare pat.raw pat.vmdk
R -- compare pat.vdi pat.vhdx
R -- compare pat.raw
R -- compare nonexist.raw pat.raw
R -- compare pat.raw nonexist.raw
R -- compare -U pat.raw v3.qcow2
R -- compare -p pat.raw v3.qcow2
R -- compare -T none pat.raw v3.qcow2
R -- compare --image-opts driver=raw,file.filename=pat.raw driver=qcow2,file.filename=v3.qcow2
R -- compare --object "$SEC" pat.raw --image-opts driver=luks,key-secret=s0,file.filename=enc.luks

# --- map --------------------------------------------------------------------
for f in pat.raw v3.qcow2 comp.qcow2 zero.qcow2 ovl.qcow2 top.qcow2 ovlr.qcow2 snap.qcow2 \
  pat.vmdk pat.vdi pat.vpc pat.vhdx pat.qed pat.qcow; do
  R -- map --output=json "$f"
done
R -- map pat.raw
R -- map v3.qcow2
R -- map top.qcow2
R -- map --output=human zero.qcow2
R -- map --start-offset=1M --output=json v3.qcow2
R -- map --max-length=1M --output=json v3.qcow2
R -- map --start-offset=1M --max-length=64k --output=json top.qcow2
R -- map --start-offset=1000 --max-length=1000 --output=json v3.qcow2
R -- map --start-offset=5M v3.qcow2
R -- map --start-offset=-1 v3.qcow2
R -- map --start-offset=1Q v3.qcow2
R -- map --max-length=0 v3.qcow2
R -- map --max-length=-5 v3.qcow2
R -- map -f raw v3.qcow2
R -- map -U v3.qcow2
R -- map broken.qcow2
R -- map
R -- map --image-opts driver=qcow2,file.filename=top.qcow2

# --- measure ----------------------------------------------------------------
R -- measure --size 1G -O qcow2
R -- measure --size 1G
R -- measure --size 1M -O raw
R -- measure --output=json --size 1G -O qcow2
R -- measure --size 1G -O qcow2 -o cluster_size=4k
R -- measure --size 1G -O qcow2 -o preallocation=full
R -- measure --size 1G -O qcow2 -o preallocation=metadata
R -- measure --size 1G -O qcow2 -o extended_l2=on
R -- measure --size 1G -O qcow2 -o help
R -- measure --size 1G -O qcow2 -o bogus=1
R -- measure --size 1G -O vmdk
R -- measure --size 1G -O foo
R -- measure --size 1Q -O qcow2
R -- measure --size -1 -O qcow2
R -- measure --size 0 -O qcow2
R -- measure -O qcow2 pat.raw
R -- measure --output=json -O qcow2 pat.raw
R -- measure -O qcow2 v3.qcow2
R -- measure -O qcow2 comp.qcow2
R -- measure -O qcow2 top.qcow2
R -- measure -O qcow2 -o compat=0.10 --size 1G
R -- measure -O qcow2 -o cluster_size=2M,refcount_bits=1 --size 100G
R -- measure -O raw pat.vmdk
R -- measure -O raw top.qcow2
R -- measure -O qcow2 -o cluster_size=4k zero.qcow2
R -- measure -O qcow2 -l s1 snap.qcow2
R -- measure -O qcow2 --size 1G pat.raw
R -- measure
R -- measure -O qcow2
R -- measure -O qcow2 nonexist.raw
R -- measure -O qcow2 --image-opts driver=qcow2,file.filename=v3.qcow2
# (measure -o encrypt.format=luks: qemu-img times PBKDF2 and fails at random
# with "Unable to get accurate CPU usage"; not a row)

# --- resize -----------------------------------------------------------------
R -- resize pat.raw 8M
R -- resize pat.raw +1M
R -- resize pat.raw -1M
R -- resize --shrink pat.raw -1M
R -- resize --shrink pat.raw 1M
R -- resize pat.raw 1M
R -- resize -f raw pat.raw 1000
R -- resize v3.qcow2 8M
R -- resize v3.qcow2 +1M
R -- resize v3.qcow2 1M
R -- resize --shrink v3.qcow2 2M
R -- resize --shrink v3.qcow2 -1M
R -- resize v3.qcow2 +0
R -- resize v3.qcow2 0
R -- resize v3.qcow2 1Q
R -- resize v3.qcow2 9E
R -- resize v3.qcow2 1000000
R -- resize v3.qcow2 -- -1M
R -- resize -q v3.qcow2 8M
R -- resize --preallocation=full pat.raw 8M
R -k "qcow2-resize.c: falloc/full growth does not build qemu's fresh refcount area first (documented there)" -- resize --preallocation=falloc v3.qcow2 8M
R -- resize --preallocation=metadata v3.qcow2 8M
R -- resize --preallocation=bogus v3.qcow2 8M
R -- resize snap.qcow2 8M
R -- resize --shrink snap.qcow2 1M
R -- resize comp.qcow2 8M
R -- resize ovl.qcow2 8M
R -- resize v2.qcow2 8M
R -- resize bm.qcow2 8M
R -- resize pat.vmdk 8M
R -- resize pat.vdi 8M
R -- resize pat.vpc 8M
R -- resize pat.vhdx 8M
R -- resize pat.qed 8M
R -- resize pat.qed +100k
R -- resize --shrink pat.qed 1M
R -- resize --preallocation=full pat.qed 8M
R -- resize pat.qcow 8M
R -- resize v3.qcow2
R -- resize
R -- resize nonexist.qcow2 1M
R -- resize --image-opts driver=qcow2,file.filename=v3.qcow2 8M

# --- amend ------------------------------------------------------------------
R -- amend -o compat=0.10 v3.qcow2
R -- amend -o compat=1.1 v2.qcow2
R -- amend -o compat=v2 v3.qcow2
R -- amend -o lazy_refcounts=on v3.qcow2
R -- amend -o lazy_refcounts=on v2.qcow2
R -k "qcow2-check-rebuild.c: qemu rewrites the old refcount block whole before the switch (allocation of a freed cluster)" -- amend -o refcount_bits=8 v3.qcow2
R -- amend -o refcount_bits=1 v2.qcow2
R -- amend -o cluster_size=4k v3.qcow2
R -- amend -o size=8M v3.qcow2
R -- amend -o size=1M v3.qcow2
R -- amend -o compat=0.10 zero.qcow2
R -- amend -o compat=0.10 bm.qcow2
R -- amend -o compat=0.10 snap.qcow2
R -- amend -o compat=0.10 comp.qcow2
R -- amend -o bogus=1 v3.qcow2
R -- amend -o help v3.qcow2
R -- amend -f qcow2 -o help
R -- amend -o '?' v3.qcow2
R -- amend v3.qcow2
R -- amend -o compat=0.10
R -- amend -o backing_file=base.qcow2,backing_fmt=qcow2 v3.qcow2
R -- amend -o backing_fmt=raw ovl.qcow2
R -- amend -o backing_file=base.qcow2,backing_fmt=qcow2 ovl.qcow2
R -- amend -o backing_file=base.qcow2 ovl.qcow2
R -- amend -o compat=1.1,backing_file=x.qcow2,backing_fmt=qcow2 v2.qcow2
R -- amend -o data_file=d.raw v3.qcow2
R -- amend -f raw -o size=1M pat.raw
R -- amend -o compat=0.10 pat.vmdk
R -- amend -o compat=0.10 -q v3.qcow2
R -- amend --force -o compat=0.10 v3.qcow2
R -- amend --image-opts -o lazy_refcounts=on driver=qcow2,file.filename=v3.qcow2
R -- amend -o compat=0.10 nonexist.qcow2

# --- rebase -----------------------------------------------------------------
R -- rebase -b base.qcow2 -F qcow2 top.qcow2
R -- rebase -u -b base.qcow2 -F qcow2 top.qcow2
R -- rebase -b '' ovl.qcow2
R -- rebase -u -b '' ovl.qcow2
R -- rebase -b pat.raw -F raw ovl.qcow2
R -- rebase -b missing.qcow2 -F qcow2 ovl.qcow2
R -- rebase -u -b missing.qcow2 -F qcow2 ovl.qcow2
R -- rebase ovl.qcow2
R -- rebase -b base.qcow2 ovl.qcow2
R -- rebase -b base.qcow2 -F qcow2 v3.qcow2
R -- rebase -b v3.qcow2 -F qcow2 broken.qcow2
R -- rebase -q -b base.qcow2 -F qcow2 top.qcow2
R -- rebase -f raw -b base.qcow2 -F qcow2 pat.raw
R -- rebase -b base.qcow2 -F qcow2
R -- rebase -u -b base.qcow2 -F qcow2 nonexist.qcow2

# --- commit -----------------------------------------------------------------
R -- commit ovl.qcow2
R -- commit top.qcow2
R -a "qemu's commit job copies with parallel requests: the cluster order in base varies from run to run" -- commit -b base.qcow2 top.qcow2
R -- commit -d top.qcow2
R -- commit -q ovl.qcow2
R -- commit -r 100M ovl.qcow2
R -- commit ovlr.qcow2
R -- commit v3.qcow2
R -- commit -b pat.raw top.qcow2
R -- commit -b ovl.qcow2 ovl.qcow2
R -- commit broken.qcow2
R -- commit -f raw pat.raw
R -- commit -t bogus ovl.qcow2
R -- commit
R -- commit nonexist.qcow2

# --- snapshot ---------------------------------------------------------------
R -- snapshot -l snap.qcow2
R -- snapshot -l v3.qcow2
R -- snapshot -l v2.qcow2
R -- snapshot snap.qcow2
R -- snapshot -l pat.raw
R -- snapshot -l pat.qed
R -- snapshot -l -U snap.qcow2
R -- snapshot -l --image-opts driver=qcow2,file.filename=snap.qcow2
R -D -- snapshot -c s3 v3.qcow2
R -D -- snapshot -c s3 snap.qcow2
R -D -- snapshot -c s1 snap.qcow2
R -D -- snapshot -c s3 comp.qcow2
R -D -- snapshot -c s3 v2.qcow2
R -D -- snapshot -c s3 bm.qcow2
R -D -- snapshot -q -c s3 v3.qcow2
R -- snapshot -c s3 pat.raw
R -- snapshot -c s3 pat.vmdk
R -- snapshot -a s1 snap.qcow2
R -- snapshot -a 1 snap.qcow2
R -- snapshot -a nosuch snap.qcow2
R -- snapshot -d s1 snap.qcow2
R -- snapshot -d 2 snap.qcow2
R -- snapshot -d nosuch snap.qcow2
R -- snapshot -l -c x snap.qcow2
R -- snapshot -a s1 -d s2 snap.qcow2
R -- snapshot -c
R -- snapshot -l
R -- snapshot -l nonexist.qcow2

# --- dd ---------------------------------------------------------------------
R -- dd if=pat.raw of=o.raw
R -- dd if=pat.raw of=o.raw bs=64k count=2
R -- dd if=pat.raw of=o.raw bs=64k skip=16
R -- dd if=pat.raw of=o.raw bs=1k count=3 skip=2
R -- dd -O qcow2 if=pat.raw of=o.qcow2
R -- dd -O qcow2 if=top.qcow2 of=o.qcow2 bs=1M count=2
R -- dd -f qcow2 if=v3.qcow2 of=o.raw
R -- dd if=v3.qcow2 of=o.raw bs=4k skip=256 count=32
R -- dd if=pat.raw of=o.raw bs=3 count=5
R -- dd if=pat.raw of=o.raw bs=0
R -- dd if=pat.raw of=o.raw bs=1Q
R -- dd if=pat.raw of=o.raw count=-1
R -- dd if=pat.raw of=o.raw skip=100000 bs=64k
R -- dd if=pat.raw of=o.raw count=0
R -- dd if=pat.raw of=o.raw conv=notrunc
R -- dd if=pat.raw of=o.raw foo
R -- dd if=pat.raw
R -- dd of=o.raw
R -- dd if=nonexist.raw of=o.raw
R -- dd if=pat.raw of=v3.qcow2
R -- dd -O foo if=pat.raw of=o.raw
R -- dd -U if=pat.raw of=o.raw
R -- dd --image-opts if=driver=qcow2,file.filename=v3.qcow2 of=o.raw
R -- dd if=pat.raw of=o.raw if=v3.qcow2
R -- dd -O raw if=ovl.qcow2 of=o.raw bs=1M count=2
R -- dd -f raw -O qcow2 if=pat.raw of=o.qcow2 bs=64k skip=8 count=20

# --- bench ------------------------------------------------------------------
R -- bench -c 10 v3.qcow2
R -- bench -c 10 -d 2 -s 4k pat.raw
R -- bench -c 8 -S 8k -o 1M v3.qcow2
R -- bench -q -c 4 v3.qcow2
R -- bench -U -c 4 v3.qcow2
R -- bench -c 4 -t none -i threads pat.raw
R -- bench -c 4 -w --pattern=0x12 pat.raw
R -- bench -c 4 -w -s 64k v3.qcow2
R -- bench -c 4 -w --flush-interval=2 v3.qcow2
R -- bench -c 4 -w --flush-interval=2 --no-drain v3.qcow2
R -- bench -c 4 --flush-interval=2 v3.qcow2
R -- bench -c 4 -w --no-drain v3.qcow2
R -- bench -c 0 v3.qcow2
R -- bench -c -1 v3.qcow2
# (bench -d 0: qemu-img 7.2 never finishes; imgpipe runs the requests one
# at a time.  Not a row: a hang is nothing to match.)
R -- bench -c 4 -s 0 v3.qcow2
R -- bench -c 4 -o 5M v3.qcow2
R -- bench -c 4 --pattern=300 -w v3.qcow2
R -- bench -c 4 -i bogus v3.qcow2
R -- bench -c 4 -i native v3.qcow2
R -- bench -c 4 -n v3.qcow2
R -- bench
R -- bench -c 4 nonexist.qcow2

# --- bitmap -----------------------------------------------------------------
R -- bitmap --add v3.qcow2 b
R -- bitmap --add -g 64k v3.qcow2 b
R -- bitmap --add -g 1k v3.qcow2 b
R -- bitmap --add -g 3k v3.qcow2 b
R -- bitmap --add -g 1Q v3.qcow2 b
R -- bitmap --add --disable v3.qcow2 b
R -- bitmap --add bm.qcow2 b0
R -- bitmap --add v2.qcow2 b
R -- bitmap --add pat.raw b
R -- bitmap --remove bm.qcow2 b0
R -- bitmap --remove bm.qcow2 nosuch
R -- bitmap --clear bm.qcow2 b0
R -- bitmap --enable bm.qcow2 b1
R -- bitmap --disable bm.qcow2 b0
R -- bitmap --merge b1 bm.qcow2 b0
R -- bitmap --merge nosuch bm.qcow2 b0
R -- bitmap --add --merge b0 -b bm.qcow2 -F qcow2 v3.qcow2 b
R -- bitmap --merge b0 -b bm.qcow2 v3.qcow2 b
R -- bitmap --add -b bm.qcow2 v3.qcow2 b
R -- bitmap --add -f qcow2 v3.qcow2 b
R -- bitmap --add --image-opts driver=qcow2,file.filename=v3.qcow2 b
R -- bitmap v3.qcow2 b
R -- bitmap --add v3.qcow2
R -- bitmap --remove --add bm.qcow2 b0
R -- bitmap --add nonexist.qcow2 b

# --- images other tools made (parallels, bochs, cloop and dmg included) ------
for f in $SAMPLE_FILES; do
  [ -f "$BASE/s-$f" ] || { echo "note: sample $f absent, its rows not run"; continue; }
  R -- info --output=json "s-$f"
  R -- check "s-$f"
  R -- map --output=json "s-$f"
  R -- convert -O raw "s-$f" o.raw
  R -- compare "s-$f" "s-$f"
done
R -k "parallels.c (owned elsewhere): 4 KiB allocated; qemu 1 MiB (same bytes)" -- create -f parallels n.hdd 1M
R -k "parallels.c (owned elsewhere): 3 MiB allocated; qemu 4 MiB (same bytes)" -- convert -O parallels pat.raw o.hdd
R -- convert -O qcow2 s-qemu-parallels-v2 o.qcow2
