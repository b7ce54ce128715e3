resource "lxd_container" "server" {
  for_each = var.servers

  name             = each.key
  image            = each.value.image
  profiles         = var.profiles
  # phoenix waits for each new server's address itself (polling LXD every 0.25 s, against the
  # provider's 1 s + 3 s waits); the `servers` output then holds the address from the next refresh.
  wait_for_network = false

  # The operator's key is in every server's config: an image of phoenix's base writes it from
  # there when LXD creates the server (an LXD template, which would write an empty file if the key
  # were not there); the servers of any other image get it as a file (below).
  config = {
    "user.phoenix.fleet"          = var.fleet
    "user.phoenix.generation"     = tostring(each.value.generation)
    "user.phoenix.image"          = each.value.image
    "user.phoenix.authorized_key" = var.authorized_key
  }

  # A server never gets another image under the same name: phoenix replaces servers by new ones.
  # Images are given by fingerprint; states written when they were given by alias stay as they are.
  lifecycle {
    ignore_changes = [image]
  }

  # Uploaded while the container is still stopped, before its first boot, to a server whose image
  # does not write it: LXD's file helper of a new container is sometimes missing for ~30 s
  # (canonical/lxd#18403), which the image's template avoids.
  # mode must be four digits: provider 1.5.0 reads a three-digit mode as decimal.
  dynamic "file" {
    for_each = contains(var.keyed_by_image, each.key) ? [] : [var.authorized_key]
    iterator = key
    content {
      content            = "${key.value}\n"
      target_file        = "/root/.ssh/authorized_keys"
      mode               = "0600"
      uid                = 0
      gid                = 0
      create_directories = true
    }
  }
}
