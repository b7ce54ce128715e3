output "servers" {
  description = "Server name => its private IPv4 address, image (AMI id) and generation."
  value = {
    for name, server in aws_instance.server : name => {
      address    = server.private_ip
      image      = var.servers[name].image
      generation = var.servers[name].generation
    }
  }
}
