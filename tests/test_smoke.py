from django.test import Client


def test_admin_index_sends_anonymous_users_to_allauth_login(client: Client) -> None:
    response = client.get("/admin/")
    assert response.status_code == 302
    response = client.get(response["Location"])
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")
