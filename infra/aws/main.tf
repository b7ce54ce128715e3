resource "aws_instance" "server" {
  for_each = var.servers

  ami                    = each.value.image
  instance_type          = var.instance_type
  subnet_id              = var.subnet_id
  # empty: the VPC's default security group
  vpc_security_group_ids = var.security_group_ids

  # The operator's key through cloud-init: with disable_root false, root's authorized_keys get
  # it as given (phoenix logs in as root; the image allows root by key only). jsonencode: the
  # line is quoted as a YAML string, whatever it holds.
  # cloud-init also prints the new host keys to the console, where phoenix reads them
  # (ec2:GetConsoleOutput) to pin them before its first SSH connection.
  user_data = <<-EOT
    #cloud-config
    disable_root: false
    ssh_authorized_keys:
      - ${jsonencode(var.authorized_key)}
    ssh_deletekeys: true
    ssh_genkeytypes: [ed25519]
  EOT

  metadata_options {
    http_tokens = "required"
  }

  tags = {
    "Name"               = each.key
    "phoenix:fleet"      = var.fleet
    "phoenix:generation" = tostring(each.value.generation)
    "phoenix:image"      = each.value.image
  }

  # A server never gets another image under the same name: phoenix replaces servers by new ones.
  lifecycle {
    ignore_changes = [ami, user_data]
  }
}

resource "aws_lb_target_group_attachment" "server" {
  for_each = var.servers

  target_group_arn = var.target_group_arn
  target_id        = aws_instance.server[each.key].id
  port             = var.server_port
}
