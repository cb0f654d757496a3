# Debian packaging (debian/, dpkg-dev's tools only, no debhelper):
# `dpkg-buildpackage -b -us -uc` on a copy of the source tree makes a
# .deb; its contents run where they are unpacked (dpkg-deb -x: no root,
# nothing installed on the machine), since the tree is relocatable:
# the unpacked plush answers %px, pkg-config finds plush.pc in it.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.bash"
src=${PLUSH_SOURCE_DIR:?PLUSH_SOURCE_DIR not set}
if [ "${PLUSH_SANITIZED:-}" = 1 ]; then
  echo "skipped: the package is built the same way in the plain build's run"
  exit 77
fi
command -v dpkg-buildpackage >/dev/null || { echo "skipped: no dpkg-buildpackage"; exit 77; }
tmp=$(mktemp -d)
trap 'cleanup; rm -rf "$tmp"' EXIT

mkdir "$tmp/plush"
(cd "$src" && tar --exclude='./build*' --exclude=./.git --exclude=./debian/build \
  --exclude=./debian/plush -cf - .) | tar -C "$tmp/plush" -xf -
(cd "$tmp/plush" && DEB_BUILD_OPTIONS=parallel=2 dpkg-buildpackage -b -us -uc) \
  >"$tmp/build.log" 2>&1 || fail "dpkg-buildpackage: $(tail -30 "$tmp/build.log")"
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
multi=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
deb="$tmp/plush_0.1.0_$arch.deb"
[ -f "$deb" ] || fail "no $deb: $(ls "$tmp")"
info=$(dpkg-deb -f "$deb" Package Version Depends)
grep -q '^Package: plush$' <<<"$info" || fail "control: $info"
grep -q '^Version: 0.1.0$' <<<"$info" || fail "control: $info"
grep -q '^Depends: .*libuv1' <<<"$info" || fail "Depends lacks libuv1: $info"
files=$(dpkg-deb -c "$deb" | awk '{print $NF}')
for f in ./usr/bin/plush ./usr/bin/plush-engine ./usr/include/plush.h \
  "./usr/lib/$multi/libplush.so.0.1.0" "./usr/lib/$multi/pkgconfig/plush.pc" \
  ./usr/share/lua/5.4/plush/cli.lua ./usr/lib/lua/5.4/plush/core.so \
  ./usr/lib/lua/5.4/plush/engine.so ./usr/share/doc/plush/embedding.md; do
  grep -qxF "$f" <<<"$files" || fail "the package lacks $f"
done

dpkg-deb -x "$deb" "$tmp/root"
out=$(env -u LUA_PATH -u LUA_CPATH "$tmp/root/usr/bin/plush" -e '%px return engine.id + 40')
[ "${out%%$'\n'*}" = "[engine 0] 40" ] || fail "the unpacked plush printed: $out"
libs=$(PKG_CONFIG_PATH="$tmp/root/usr/lib/$multi/pkgconfig" pkg-config --libs plush)
libs=${libs% }
case $libs in
  "-L$tmp/root/usr/lib/$multi/pkgconfig/../../../lib/$multi -lplush -llua5.4") ;;
  *) fail "pkg-config --libs plush from the package: $libs" ;;
esac
echo "1 passed, 0 failed"
