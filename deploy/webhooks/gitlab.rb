# /etc/gitlab/gitlab.rb: GitLab's self-managed container registry sends Distribution
# notifications; point them at autodeployd's registry endpoint, then `gitlab-ctl reconfigure`.
registry['notifications'] = [
  {
    'name' => 'autodeploy',
    'url' => 'https://autodeploy.example.com/v1/webhooks/registry',
    'timeout' => '2s',
    'threshold' => 5,
    'backoff' => '2s',
    'headers' => { 'Authorization' => ['Bearer REPLACE_WITH_WEBHOOK_TOKEN'] }
  }
]
