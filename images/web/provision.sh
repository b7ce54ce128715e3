#!/bin/sh
# Provisioning of the web image: the same steps for the lab (LXD) and for a cloud builder.
set -eu

# The build network hands out addresses by DHCP; wait for a default route before apt.
i=0
until ip route | grep -q '^default'; do
  i=$((i + 1)); [ "$i" -lt 120 ] || { echo "no network after 60 s" >&2; exit 1; }
  sleep 0.5
done

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends nginx-light
apt-get clean
rm -rf /var/lib/apt/lists/*

install -m 0644 /tmp/files/nginx-default.conf /etc/nginx/sites-available/default
install -d -m 0755 /var/www/html
sed "s/@VERSION@/${IMAGE_VERSION}/g" /tmp/files/index.html > /var/www/html/index.html
chmod 0644 /var/www/html/index.html
install -m 0644 /tmp/files/sshd-hardening.conf /etc/ssh/sshd_config.d/10-hardening.conf
# No message of the day for SSH sessions: nobody logs in to these servers by hand, and pam_motd
# runs /etc/update-motd.d at each session's start, phoenix's drift scans included (on the lab:
# ~7 ms of the server's CPU per connection, a quarter of a login).
sed -i '/^session.*pam_motd\.so/s/^/# (phoenix: no motd) /' /etc/pam.d/sshd
rm -rf /tmp/files
systemctl enable nginx
