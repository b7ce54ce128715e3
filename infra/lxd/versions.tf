terraform {
  # what phoenix drives needs 0.15.4 (apply -json, plan -refresh-only); tested with the bundled
  # Terraform and with 1.0.3 as [terraform] binary
  required_version = ">= 0.15.4"

  required_providers {
    lxd = {
      source  = "terraform-lxd/lxd"
      version = "1.5.0"
    }
  }
}

# The daemon of the workspace's lxc client configuration (config_dir): the lab's, over its unix
# socket, or with [lxd] endpoint a remote over HTTPS (its certificates sit in that directory).
# refresh_interval is the initial delay of each of the provider's waits (for "Running", for an
# address, for "Stopped"); its default of 10s makes every apply take ~20 s more than LXD does.
# The waits come after LXD's own operation has finished: 100ms. A new server's address is then
# rarely in the apply's `servers` output (DHCP takes longer): phoenix waits for it through LXD.
# The two certificate settings are given explicitly only to silence the provider's warnings about
# their empty-string environment defaults.
# config_dir: the workspace's lxc client configuration, whose default remote names the workspace's
# own LXD project; every server and image of the workspace lives there.
provider "lxd" {
  config_dir                   = var.lxd_config_dir
  refresh_interval             = "100ms"
  accept_remote_certificate    = false
  generate_client_certificates = false
}
