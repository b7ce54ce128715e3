variable "fleet" {
  description = "Name of the fleet these servers belong to (written to user.phoenix.fleet)."
  type        = string
}

variable "servers" {
  description = "Server name => the image it runs and the generation it belongs to."
  type = map(object({
    image      = string
    generation = number
  }))
}

variable "authorized_key" {
  description = "The operator's public key line, written to /root/.ssh/authorized_keys."
  type        = string
}

variable "keyed_by_image" {
  description = "Servers whose image writes authorized_key from their config (user.phoenix.authorized_key) at their first start: no file is uploaded into them."
  type        = list(string)
  default     = []
}

variable "profiles" {
  description = "LXD profiles of every server (network and root disk come from them)."
  type        = list(string)
  default     = ["default"]
}

variable "lxd_config_dir" {
  description = "An lxc client configuration whose default remote acts in the workspace's own LXD project (phoenix gives it); null: ~/.config/lxc."
  type        = string
  default     = null
}
